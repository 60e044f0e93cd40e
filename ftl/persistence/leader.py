"""A leader lock in Redis with an expiry: one holder at a time, taken over when the holder dies."""

from __future__ import annotations

import secrets

from ftl.persistence.keys import Keys
from ftl.persistence.scripts import Scripts


class LeaderLock:
    """Typed wrapper of ``leader_lock.lua`` and ``leader_release.lua``."""

    def __init__(self, scripts: Scripts, keys: Keys, name: str, ttl_ms: int = 6000) -> None:
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        self.scripts = scripts
        self.key = keys.lock(name)
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(16)

    async def acquire(self) -> bool:
        """Take the lock, or renew it if this holder has it. True while we are the leader."""
        reply = await self.scripts.call("leader_lock", [self.key], [self.token, self.ttl_ms])
        return int(reply) == 1

    async def release(self) -> bool:
        reply = await self.scripts.call("leader_release", [self.key], [self.token])
        return int(reply) == 1
