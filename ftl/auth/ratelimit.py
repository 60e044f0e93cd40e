"""Per-client-IP request limit in Redis (fixed window), answering 429 with Retry-After."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ftl import logs
from ftl.errors import Kind, Refused
from ftl.persistence.keys import Keys

log = logs.get(__name__)


class RateLimit:
    """At most ``limit`` requests per ``window_s`` seconds per (scope, client)."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, scope: str, *, limit: int = 60, window_s: int = 60
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scope = scope
        self.limit = limit
        self.window_s = window_s

    async def hit(self, who: str) -> None:
        """Count one request of ``who``; raise 429 once over the limit. Fails open if Redis errs."""
        key = self.keys.ratelimit(self.scope, who)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=self.window_s, nx=True)
                pipe.incr(key)
                pipe.ttl(key)
                _, count, ttl = await pipe.execute()
        except RedisError as exc:
            log.warning("rate limit unavailable; allowing the request", scope=self.scope, error=str(exc))
            return
        if int(count) > self.limit:
            retry = max(int(ttl), 1)
            raise Refused(
                Kind.RATE_LIMITED, "rate_limited", f"too many requests; retry in {retry} s",
                retry_after_s=retry,
            )  # fmt: skip
