"""The simulated users' HTTP/1.1 keep-alive client, each bound to its own loopback address."""

from __future__ import annotations

import asyncio
import json
from typing import Any

IO_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError)


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 keep-alive client on raw asyncio streams, bound to one source address


class Http:
    def __init__(self, port: int, local_ip: str) -> None:
        self.port = port
        self.local_ip = local_ip
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: Any = None, timeout: float = 15.0
    ) -> tuple[int, Any]:
        try:
            return await asyncio.wait_for(self._request(method, path, headers, body), timeout)
        except BaseException:
            self.close()
            raise

    async def _request(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(self.local_ip, 0)
            )
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            f"Content-Length: {len(payload)}",
            "Content-Type: application/json",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await self.reader.readexactly(length) if length else b""
        return status, (json.loads(data) if data else None)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def user_ip(index: int) -> str:
    return f"127.77.{1 + index // 250}.{1 + index % 250}"
