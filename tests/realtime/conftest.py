"""Fixtures for the ws role: a real in-process server on a free port, tokens, a Lua-style publisher."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from ftl.auth.keyring import KeyRing
from ftl.auth.tokens import Tokens
from ftl.health import Health
from ftl.persistence.keys import Keys
from ftl.realtime import protocol
from ftl.realtime.server import WsOptions, WsServer
from tests.helpers import await_for

SECRET = "realtime-test-secret-" + "x" * 32
KID = "t1"

# The same call the trade scripts make: a cmsgpack map PUBLISHed on price:{id}.
PUBLISH_LUA = """
return redis.call('PUBLISH', KEYS[1], cmsgpack.pack({type = 'PRICE_UPDATE', id = tonumber(ARGV[1]),
  price = tonumber(ARGV[2]), index = tonumber(ARGV[3]), skew = tonumber(ARGV[4]),
  seq = tonumber(ARGV[5]), ts = tonumber(ARGV[6])}))
"""

TEST_OPTIONS = WsOptions(tick_s=0.05, auth_timeout_s=0.5, slow_after_s=0.5, high_water=1024, send_buffer=4096)


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(KeyRing.of(((KID, SECRET),)), 900, 3600)


async def start_server(
    redis: aioredis.Redis, keys: Keys, tokens: Tokens, options: WsOptions = TEST_OPTIONS
) -> WsServer:
    server = WsServer(redis, keys, tokens.verify_access, Health(), "127.0.0.1", 0, options=options)
    await server.start()

    async def subscribed() -> bool:
        return server.feed.subscribed.is_set()

    await await_for(subscribed, 10, "the price feed to subscribe")
    return server


@pytest.fixture
async def ws_server(redis_client: aioredis.Redis, keys: Keys, tokens: Tokens) -> AsyncIterator[WsServer]:
    server = await start_server(redis_client, keys, tokens)
    try:
        yield server
    finally:
        await server.stop()


async def seed(redis: aioredis.Redis, keys: Keys, iid: int, index: int, skew: int, pseq: int) -> None:
    await redis.hset(
        keys.instrument(iid),
        mapping={"index": index, "skew": skew, "depth": 1000, "pseq": pseq, "status": "open"},
    )


async def publish(
    redis: aioredis.Redis, keys: Keys, iid: int, price: int, seq: int, ts: int = 1_700_000_000_000
) -> int:
    receivers: int = await redis.eval(  # type: ignore[misc]
        PUBLISH_LUA, 1, keys.price_channel(iid), iid, price, price, 0, seq, ts
    )
    return receivers


async def open_ws(server: WsServer, token: str | None = None, **kwargs: Any) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    kwargs.setdefault("compression", None)
    return await connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers=headers, **kwargs)


async def send(ws: ClientConnection, message: object) -> None:
    await ws.send(msgpack.packb(message))


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    data = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(data, bytes)
    return protocol.decode_server(data)


async def authed(server: WsServer, tokens: Tokens, user_id: int = 1) -> ClientConnection:
    ws = await open_ws(server, tokens.issue_access(user_id))
    assert (await recv(ws))["type"] == "AUTH_OK"
    return ws


def raw_socket(rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    return sock


def client_frame(payload: bytes) -> bytes:
    """A masked binary frame (zero mask key) as a client must send it."""
    assert len(payload) < 126
    return bytes((0x82, 0x80 | len(payload))) + b"\0\0\0\0" + payload
