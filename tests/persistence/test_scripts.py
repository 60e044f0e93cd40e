"""The Lua loader and the leader lock, against a real Redis."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ftl.persistence.keys import Keys
from ftl.persistence.leader import LeaderLock
from ftl.persistence.scripts import Scripts, source
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


def test_includes_are_spliced_once_and_none_is_left(tmp_path: Path) -> None:
    for path in lua_dir().glob("*.lua"):
        text = source(path)
        assert "--- @include" not in text, path.name
        assert text.count("local function int_arg") <= 1, path.name
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "a.lua").write_text('--- @include "b"\nlocal A = 1\n')
    (tmp_path / "include" / "b.lua").write_text("local B = 2\n")
    (tmp_path / "s.lua").write_text('--- @include "a"\n--- @include "b"\nreturn A + B\n')
    assert source(tmp_path / "s.lua") == "local B = 2\nlocal A = 1\n-- (include b: above)\nreturn A + B\n"
    (tmp_path / "t.lua").write_text('--- @include "missing"\n')
    with pytest.raises(FileNotFoundError):
        source(tmp_path / "t.lua")


async def test_a_spliced_script_runs(scripts: Scripts, keys: Keys) -> None:
    """index_update.lua is spliced from base, amm and price: a bad call is refused by base's checks."""
    reply = await scripts.call("index_update", [keys.instrument(1), keys.dirty], ["x", "", "", "", "c"])
    assert [v.decode() for v in reply] == ["rejected", "bad_args"]


def test_limits_reach_lua_from_their_one_declaration() -> None:
    """The trade scripts read the limits from the generated include (ftl/limits.py), never as
    numbers of their own."""
    from ftl import limits

    generated = limits.lua_source()
    for name in limits.LUA_NAMES:
        assert f"local {name} = {getattr(limits, name)}" in generated
    # the numbers only a limit has (1000 or 10000 also count chunks or basis points)
    numbers = {str(limits.MAX_QTY), str(limits.MAX_ACCEPTABLE), str(limits.MAX_SKEW)}
    scripts = [
        *lua_dir().glob("position_*.lua"),
        lua_dir() / "index_update.lua",
        *lua_dir().glob("include/*.lua"),
    ]
    for path in scripts:
        text = path.read_text()
        code = text.split("]]", 1)[-1] if text.startswith("--[[") else text
        for line in code.splitlines():
            if line.lstrip().startswith("--"):
                continue
            for number in numbers:
                assert not re.search(rf"(?<![0-9]){number}(?![0-9])", line), (path.name, line)
    assert "local MAX_QTY = 100000" in source(lua_dir() / "position_open.lua")
