"""ws auth against real Redis: tokens with bad claims, users that do not exist, messages held
while the user is looked up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.exceptions import InvalidStatus

from ftl.auth.tokens import Tokens
from ftl.persistence.keys import Keys
from ftl.persistence.processes import free_port
from ftl.realtime.protocol import Close
from ftl.realtime.server import KnownUsers, WsServer
from ftl.realtime.session import MAX_HELD
from tests.auth.support import signed
from tests.helpers import await_for
from tests.realtime.conftest import open_ws, recv, seed, send
from tests.realtime.test_ws import closed_code

# The tests using it name anyio_backend: else anyio's collection hook drops the parametrize args.
BAD_CLAIMS: list[tuple[str, dict[str, Any]]] = [
    ("house account", {"sub": "0"}),
    ("superscript two", {"sub": "²"}),
    ("arabic-indic digits", {"sub": "\u0661\u0662"}),
    ("exp 2**64", {"exp": 2**64}),  # once: AUTH_OK could not be packed, the socket closed with 1011
    ("nbf in an hour", {"nbf": int(time.time()) + 3600}),
]


@pytest.mark.parametrize("claims", [c for _, c in BAD_CLAIMS], ids=[n for n, _ in BAD_CLAIMS])
async def test_bad_claims_in_the_header_are_refused_before_upgrade(
    ws_server: WsServer, tokens: Tokens, claims: dict[str, Any], anyio_backend: str
) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_ws(ws_server, signed(tokens, **claims))
    assert info.value.response.status_code == 401


@pytest.mark.parametrize("claims", [c for _, c in BAD_CLAIMS], ids=[n for n, _ in BAD_CLAIMS])
async def test_bad_claims_in_the_auth_message_close_with_4001(
    ws_server: WsServer, tokens: Tokens, claims: dict[str, Any], anyio_backend: str
) -> None:
    ws = await open_ws(ws_server)
    await send(ws, {"op": "auth", "token": signed(tokens, **claims)})
    assert await closed_code(ws) == Close.UNAUTHORIZED


async def _rebuilt(redis: aioredis.Redis, keys: Keys, *users: int) -> None:
    """Redis as after a login or the rebuild: the boot marker and these users' wallets."""
    await redis.set(keys.boot_marker, "1")
    for user_id in users:
        await redis.hset(keys.wallet(user_id), mapping={"available": 100, "locked": 0})


async def test_unknown_user_is_closed_with_4001(
    ws_server: WsServer, tokens: Tokens, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await _rebuilt(redis_client, keys, 7)
    by_header = await open_ws(ws_server, tokens.issue_access(8))
    assert await closed_code(by_header) == Close.UNAUTHORIZED
    by_message = await open_ws(ws_server)
    await send(by_message, {"op": "auth", "token": tokens.issue_access(8)})
    assert await closed_code(by_message) == Close.UNAUTHORIZED
    known = await open_ws(ws_server, tokens.issue_access(7))
    assert (await recv(known))["user_id"] == 7
    await known.close()


async def test_while_redis_is_rebuilt_a_signed_token_is_trusted(ws_server: WsServer, tokens: Tokens) -> None:
    """No boot marker: a missing wallet proves nothing (docs/protocol.md)."""
    ws = await open_ws(ws_server, tokens.issue_access(8))
    assert (await recv(ws))["user_id"] == 8
    await ws.close()


async def test_a_subscribe_right_behind_the_header_is_handled_after_auth_ok(
    ws_server: WsServer, tokens: Tokens, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await _rebuilt(redis_client, keys, 7)
    await seed(redis_client, keys, 11, index=1000, skew=0, pseq=3)
    ws = await open_ws(ws_server, tokens.issue_access(7))
    await send(ws, {"op": "subscribe", "ids": [11]})
    assert (await recv(ws))["type"] == "AUTH_OK"
    snap = await recv(ws)
    assert (snap["type"], snap["id"], snap["seq"]) == ("PRICE_UPDATE", 11, 3)
    await ws.close()


class Gate:
    """A user lookup that answers only when opened: the test decides when it completes."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    async def exists(self, user_id: int) -> bool:
        await self.opened.wait()
        return True


async def _held(server: WsServer, count: int) -> bool:
    return any(len(s.held or ()) == count for s in server.sessions)


async def test_messages_during_the_lookup_are_held_then_handled_in_order(
    ws_server: WsServer, tokens: Tokens
) -> None:
    gate = Gate()
    ws_server.users = gate  # type: ignore[assignment]
    ws = await open_ws(ws_server)
    await send(ws, {"op": "auth", "token": tokens.issue_access(3)})
    for _ in range(3):
        await send(ws, {"op": "ping"})
    await await_for(lambda: _held(ws_server, 3), 5, "three held messages")
    gate.opened.set()
    assert [(await recv(ws))["type"] for _ in range(4)] == ["AUTH_OK", "PONG", "PONG", "PONG"]
    await ws.close()


async def test_too_many_messages_during_the_lookup_close_with_1008(
    ws_server: WsServer, tokens: Tokens
) -> None:
    ws_server.users = Gate()  # type: ignore[assignment]  # never opened
    ws = await open_ws(ws_server, tokens.issue_access(3))
    for _ in range(MAX_HELD + 1):
        await send(ws, {"op": "ping"})
    assert await closed_code(ws) == Close.POLICY_VIOLATION


async def test_lookups_share_one_pipeline_and_known_users_are_remembered(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    await _rebuilt(redis_client, keys, *range(1, 26))
    users = KnownUsers(redis_client, keys)
    found = await asyncio.gather(*(users.exists(uid) for uid in range(1, 51)))
    assert found == [True] * 25 + [False] * 25
    assert users.batches == 1
    assert await users.exists(3) and users.batches == 1  # remembered: Redis is not asked
    assert not await users.exists(30) and users.batches == 2  # an unknown one is asked again


async def test_lookup_with_redis_down_lets_the_user_in(keys: Keys) -> None:
    dead = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    try:
        users = KnownUsers(dead, keys)
        assert await users.exists(8)
        assert users.known == set()  # not remembered: asked again once Redis answers
    finally:
        await dead.aclose()
