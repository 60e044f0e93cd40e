"""Watching Redis from the outside: flusher lag, the replay leader, and the final outbox drain."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis

from scripts.matchday.state import MatchDayState


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class MonitorMixin(MatchDayState):
    """Samples of what the flusher and the replay leader do, read from Redis."""

    async def observe(self) -> None:
        """Flusher lag (age of the oldest outbox entry) and the replay leader, twice a second."""
        client = aioredis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
        lock = self.keys.lock("pricing-poller")
        try:
            while not self.stop.is_set():
                try:
                    holder = await client.get(lock)
                    oldest = await client.xrange(self.keys.outbox, count=1)
                    length = int(await client.xlen(self.keys.outbox))
                    if holder is not None:
                        token = holder.decode()
                        self.leader_starts.setdefault(token, time.monotonic())
                        self.leader = token
                    age = 0.0
                    if oldest:
                        age = max(0.0, (now_ms() - int(oldest[0][0].decode().split("-")[0])) / 1000)
                    self.lag.append((time.monotonic(), age, length))
                except (OSError, aioredis.RedisError):
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 0.5)
        finally:
            await client.aclose()

    async def drain(self) -> float:
        client = aioredis.Redis.from_url(self.redis_url)
        t = time.monotonic()
        try:
            while time.monotonic() - t < 120:
                if (
                    int(await client.xlen(self.keys.outbox)) == 0
                    and int(await client.scard(self.keys.dirty)) == 0
                ):
                    break
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()
        return time.monotonic() - t
