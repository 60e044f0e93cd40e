"""A small open-loop HTTP/1.1 load generator on raw asyncio streams (keep-alive, JSON bodies).

Latency is measured from each request's *scheduled* send time, so queueing inside the generator
or the server counts (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class Connection:
    """An HTTP/1.1 keep-alive client on raw asyncio streams (``local_ip``: bound to that source
    address, so that many simulated users are many peers)."""

    def __init__(self, host: str, port: int, local_ip: str | None = None) -> None:
        self.host, self.port, self.local_ip = host, port, local_ip
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        local = None if self.local_ip is None else (self.local_ip, 0)
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, local_addr=local)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> tuple[int, Any]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}",
            f"Content-Length: {len(payload)}",
            "Content-Type: application/json",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
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


Op = Callable[[Connection], Awaitable[int]]


@dataclass
class PhaseResult:
    name: str
    target_rate: float | None
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def achieved(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(p / 100 * len(data)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


async def _pool(host: str, port: int, size: int) -> asyncio.Queue[Connection]:
    queue: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(size):
        conn = Connection(host, port)
        await conn.open()
        queue.put_nowait(conn)
    return queue


async def open_loop(
    name: str, host: str, port: int, op: Op, rate: float, seconds: float, conns: int = 64
) -> PhaseResult:
    """Start ``op`` at a fixed arrival ``rate`` for ``seconds``; wait for stragglers."""
    pool = await _pool(host, port, conns)
    result = PhaseResult(name, rate, seconds)
    tasks: list[asyncio.Task[None]] = []

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        try:
            status = await op(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
            conn.close()
        finally:
            pool.put_nowait(conn)
        result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        result.statuses[status] = result.statuses.get(status, 0) + 1

    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    result.seconds = max(seconds, time.perf_counter() - start)
    while not pool.empty():
        pool.get_nowait().close()
    return result


async def closed_loop(name: str, host: str, port: int, op: Op, workers: int, seconds: float) -> PhaseResult:
    """``workers`` clients each sending back-to-back for ``seconds`` (saturation)."""
    result = PhaseResult(name, None, seconds)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        conn = Connection(host, port)
        await conn.open()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                status = await op(conn)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
                conn.close()
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    result.seconds = time.perf_counter() - start
    return result
