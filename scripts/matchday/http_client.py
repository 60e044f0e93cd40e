"""The simulated users' HTTP/1.1 keep-alive client, each bound to its own loopback address."""

from __future__ import annotations

import asyncio
from typing import Any

from scripts.loadgen import Connection

IO_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError)


class Http(Connection):
    """A simulated user's connection: bound to his own loopback address, each request with a
    deadline (a request that fails or times out drops the connection)."""

    def __init__(self, port: int, local_ip: str) -> None:
        super().__init__("127.0.0.1", port, local_ip)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: Any = None, timeout: float = 15.0
    ) -> tuple[int, Any]:
        try:
            return await asyncio.wait_for(super().request(method, path, headers, body), timeout)
        except BaseException:
            self.close()
            raise


def user_ip(index: int) -> str:
    return f"127.77.{1 + index // 250}.{1 + index % 250}"
