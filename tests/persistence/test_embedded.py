"""Embedded and external Redis lost and back: readiness follows, Lua scripts keep working."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest
import redis.asyncio as aioredis

from ftl.config import Settings
from ftl.health import Health
from ftl.persistence.embedded import (
    DataDirBusy,
    DataDirLock,
    EmbeddedPostgres,
    EmbeddedRedis,
    redis_server_binary,
)
from ftl.persistence.keys import Keys
from ftl.persistence.leader import LeaderLock
from ftl.persistence.processes import free_port
from ftl.persistence.scripts import Scripts
from tests.helpers import await_for, make_data_dir

pytestmark = pytest.mark.slow


def test_data_dir_lock_is_exclusive(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    with pytest.raises(DataDirBusy, match="already running"):
        DataDirLock(tmp_path).acquire()
    first.release()
    again = DataDirLock(tmp_path)
    again.acquire()
    again.release()


async def _ready(health: Health) -> bool:
    return (await health.readiness())[0]


async def _not_ready(health: Health) -> bool:
    return not (await health.readiness())[0]


async def test_embedded_redis_killed_is_restarted_and_scripts_still_run() -> None:
    server = EmbeddedRedis(make_data_dir())
    await server.start()
    watcher = asyncio.create_task(server.server.watch())
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.5)
    health = Health()
    health.add("redis", lambda: client.ping())  # type: ignore[arg-type,return-value]
    try:
        scripts = Scripts(client)
        await scripts.load_all()
        lock = LeaderLock(scripts, Keys(), "x")
        assert await lock.acquire()
        old_pid = server.server.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        await await_for(lambda: _not_ready(health), 5, "503 after the kill")
        await await_for(lambda: _ready(health), 10, "ready after the restart")
        assert server.server.pid != old_pid and server.server.restarts == 1
        assert await lock.acquire() is True  # NOSCRIPT after the restart handled
    finally:
        server.stop()
        watcher.cancel()
        await client.aclose()


async def test_external_redis_restarted_by_hand() -> None:
    port = free_port()
    folder = make_data_dir()
    argv = [
        str(redis_server_binary()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    health = Health()
    health.add("redis", lambda: client.ping())  # type: ignore[arg-type,return-value]
    try:
        await await_for(lambda: _ready(health), 5, "external redis up")
        scripts = Scripts(client)
        await scripts.load_all()
        lock = LeaderLock(scripts, Keys("ext:"), "x")
        assert await lock.acquire()
        proc.kill()
        proc.wait()
        await await_for(lambda: _not_ready(health), 5, "503 while it is down")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # restarted by hand
        await await_for(lambda: _ready(health), 10, "ready again")
        assert await lock.acquire() is True  # empty Redis, empty script cache: still runs
    finally:
        proc.kill()
        proc.wait()
        await client.aclose()


async def test_embedded_postgres_keeps_data_across_restarts() -> None:
    folder = make_data_dir()
    first = EmbeddedPostgres(folder)
    await first.start()
    try:
        async with await psycopg.AsyncConnection.connect(first.url, autocommit=True) as conn:
            await conn.execute("CREATE TABLE kept (v int)")
            await conn.execute("INSERT INTO kept VALUES (42)")
    finally:
        first.stop()
    second = EmbeddedPostgres(folder)
    await second.start()
    try:
        async with await psycopg.AsyncConnection.connect(second.url) as conn:
            cur = await conn.execute("SELECT v FROM kept")
            assert await cur.fetchall() == [(42,)]
    finally:
        second.stop()
    if os.geteuid() == 0:  # ran as "nobody" from a copy inside the data dir
        assert (folder / "pgdata").stat().st_uid != 0


def test_settings_object_unchanged() -> None:
    assert Settings().data_dir == Path(".ftl")
