"""A leader lock in Redis with an expiry: one holder at a time, taken over when the holder dies."""

from __future__ import annotations

import secrets

from ftl.persistence.keys import Keys
from ftl.persistence.lua_scripts import LuaScripts
from ftl.persistence.scripts import Scripts


class LeaderLock:
    """A lock ``name`` with its holder token, over ``LuaScripts.leader_lock`` and ``leader_release``."""

    def __init__(self, scripts: Scripts, keys: Keys, name: str, ttl_ms: int = 6000) -> None:
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        self.scripts = scripts
        self.lua = LuaScripts(scripts, keys)
        self.name = name
        self.key = keys.lock(name)
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(16)

    async def acquire(self) -> bool:
        """Take the lock, or renew it if this holder has it. True while we are the leader."""
        return await self.lua.leader_lock(self.name, self.token, self.ttl_ms)

    async def release(self) -> bool:
        return await self.lua.leader_release(self.name, self.token)
