"""The Lua loader and the leader lock, against a real Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from ftl.persistence.keys import Keys
from ftl.persistence.leader import LeaderLock
from ftl.persistence.scripts import Scripts
from ftl.resources import lua_dir


async def test_every_lua_file_is_registered(scripts: Scripts) -> None:
    names = {p.stem for p in lua_dir().glob("*.lua")}
    assert set(scripts) == names
    assert "leader_lock" in scripts


async def test_every_lua_file_has_a_header_contract() -> None:
    for path in lua_dir().glob("*.lua"):
        head = path.read_text().split("]]", 1)[0]
        assert "KEYS[1]" in head, path.name
        assert "Replies" in head, path.name


async def test_leader_lock_one_holder(scripts: Scripts, keys: Keys, redis_client: aioredis.Redis) -> None:
    a = LeaderLock(scripts, keys, "poller", ttl_ms=5000)
    b = LeaderLock(scripts, keys, "poller", ttl_ms=5000)
    assert await a.acquire() is True
    assert await b.acquire() is False
    assert await a.acquire() is True  # renew
    assert 0 < await redis_client.pttl(keys.lock("poller")) <= 5000
    assert await b.release() is False
    assert await a.release() is True
    assert await b.acquire() is True


async def test_leader_lock_taken_over_after_expiry(
    scripts: Scripts, keys: Keys, redis_client: aioredis.Redis
) -> None:
    a = LeaderLock(scripts, keys, "poller", ttl_ms=5000)
    b = LeaderLock(scripts, keys, "poller", ttl_ms=5000)
    assert await a.acquire()
    await redis_client.pexpire(keys.lock("poller"), 1)  # holder died: lock runs out
    deadline_checks = 0
    while await redis_client.exists(keys.lock("poller")) and deadline_checks < 1000:
        deadline_checks += 1
    assert await b.acquire() is True
    assert await a.acquire() is False


async def test_noscript_after_script_flush_is_handled(
    scripts: Scripts, keys: Keys, redis_client: aioredis.Redis
) -> None:
    lock = LeaderLock(scripts, keys, "x")
    assert await lock.acquire()
    await redis_client.script_flush()  # what a Redis restart does to the script cache
    assert await lock.acquire() is True
    assert await lock.release() is True
