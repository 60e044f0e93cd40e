"""A Redis restart re-subscribes and re-snapshots; a replica of two workers shares one port."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import psutil
import pytest
import redis.asyncio as aioredis

from ftl.auth.tokens import Tokens
from ftl.persistence.embedded import EmbeddedRedis
from ftl.persistence.keys import Keys
from ftl.persistence.processes import free_port
from tests.helpers import await_for, http_status
from tests.realtime.conftest import KID, SECRET, authed, publish, recv, seed, send, start_server


async def test_redis_restart_sends_fresh_snapshots(tmp_path: Path, tokens: Tokens) -> None:
    keys = Keys("")
    server_redis = EmbeddedRedis(tmp_path)
    await server_redis.start()
    client = aioredis.Redis.from_url(server_redis.url)
    ws_server = await start_server(client, keys, tokens)
    try:
        await seed(client, keys, 1, 1000, 0, 4)
        ws = await authed(ws_server, tokens)
        await send(ws, {"op": "subscribe", "ids": [1]})
        assert (await recv(ws))["seq"] == 4
        server_redis.stop()
        server_redis = EmbeddedRedis(tmp_path, port=server_redis.port)
        await server_redis.start()  # empty, as after a crash: the flusher rebuilds it

        async def reseeded() -> bool:  # the first command on a pooled connection may hit the dead one
            try:
                await seed(client, keys, 1, 1500, 0, 9)
            except aioredis.ConnectionError:
                return False
            return True

        await await_for(reseeded, 10, "the restarted Redis to take writes")
        fresh = await recv(ws, timeout=15)
        assert (fresh["id"], fresh["seq"], fresh["price"], fresh["snap"]) == (1, 9, 1500, True)
        await publish(client, keys, 1, 1600, 10)
        assert (await recv(ws))["seq"] == 10
        await ws.close()
    finally:
        await ws_server.stop()
        await client.aclose()
        server_redis.stop()


@pytest.mark.slow
async def test_two_workers_share_the_port(
    redis_url: str, redis_client: aioredis.Redis, keys: Keys, tokens: Tokens, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    env.update(
        {
            "FTL_REDIS_URL": redis_url,
            "FTL_REDIS_PREFIX": keys.prefix,
            "FTL_JWT_KEYS": f"{KID}:{SECRET}",
            "FTL_WS_PORT": str(port),
            "FTL_DATA_DIR": str(tmp_path),
            "FTL_DRAIN_S": "0.1",
        }
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ftl.realtime", "--workers", "2", env=env
    )
    try:

        async def two_processes_ready() -> bool:
            if http_status(f"http://127.0.0.1:{port}/readyz") != 200:
                return False
            return len(psutil.Process(proc.pid).children()) == 1

        await await_for(two_processes_ready, 30, "two ws workers")
        await seed(redis_client, keys, 5, 1000, 0, 1)

        class At:
            port = 0

        At.port = port
        sockets = []
        for user in range(16):
            ws = await authed(At, tokens, user + 1)  # type: ignore[arg-type]
            await send(ws, {"op": "subscribe", "ids": [5]})
            assert (await recv(ws))["snap"] is True
            sockets.append(ws)

        async def both_subscribed() -> bool:  # PUBLISH counts one receiver per subscribed process
            return await publish(redis_client, keys, 999, 1, 1) == 2

        await await_for(both_subscribed, 10, "a pattern subscription per worker")
        receivers = await publish(redis_client, keys, 5, 1200, 2)
        assert receivers == 2  # one subscription per worker process
        for ws in sockets:
            assert (await recv(ws))["price"] == 1200
            await ws.close()
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
