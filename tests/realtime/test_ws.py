"""The ws role end to end against real Redis: auth, subscriptions, fan-out, bad input, slow clients."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import httpx
import msgpack
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ftl.auth.tokens import Tokens
from ftl.persistence.keys import Keys
from ftl.realtime.protocol import Close
from ftl.realtime.server import WsServer
from tests.helpers import await_for
from tests.realtime.conftest import (
    authed,
    client_frame,
    open_ws,
    publish,
    raw_socket,
    recv,
    seed,
    send,
)


async def closed_code(ws: object, timeout: float = 5.0) -> int:
    """Read until the server closes; fail if it sends any data frame first."""
    from websockets.asyncio.client import ClientConnection

    assert isinstance(ws, ClientConnection)
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), timeout)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def test_auth_by_bearer_header(ws_server: WsServer, tokens: Tokens) -> None:
    ws = await open_ws(ws_server, tokens.issue_access(42))
    msg = await recv(ws)
    assert msg["type"] == "AUTH_OK"
    assert msg["user_id"] == 42
    assert msg["expires_at"] > time.time()
    await ws.close()


async def test_auth_by_first_message(ws_server: WsServer, tokens: Tokens) -> None:
    ws = await open_ws(ws_server)
    await send(ws, {"op": "auth", "token": tokens.issue_access(7)})
    msg = await recv(ws)
    assert (msg["type"], msg["user_id"]) == ("AUTH_OK", 7)
    await ws.close()


async def test_bad_bearer_header_is_refused_before_upgrade(ws_server: WsServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_ws(ws_server, "not-a-token")
    assert info.value.response.status_code == 401


async def test_no_auth_closes_with_4001_and_no_data(ws_server: WsServer) -> None:
    ws = await open_ws(ws_server)
    assert await closed_code(ws) == Close.UNAUTHORIZED


async def test_message_before_auth_closes_with_4001(ws_server: WsServer) -> None:
    ws = await open_ws(ws_server)
    await send(ws, {"op": "subscribe", "ids": [1]})
    assert await closed_code(ws) == Close.UNAUTHORIZED


async def test_bad_token_in_auth_message_closes_with_4001(ws_server: WsServer) -> None:
    ws = await open_ws(ws_server)
    await send(ws, {"op": "auth", "token": "garbage"})
    assert await closed_code(ws) == Close.UNAUTHORIZED


async def test_expired_token_closes_unless_reauthenticated(ws_server: WsServer, tokens: Tokens) -> None:
    now = int(time.time())
    short = tokens.issue_access(5, now=now - tokens.access_ttl_s + 2)  # expires in ~2 s
    lapsing = await open_ws(ws_server, short)
    renewing = await open_ws(ws_server, short)
    first = await recv(lapsing)
    await recv(renewing)
    await send(renewing, {"op": "auth", "token": tokens.issue_access(5)})
    renewed = await recv(renewing)
    assert renewed["type"] == "AUTH_OK"
    assert renewed["expires_at"] > first["expires_at"]
    assert await closed_code(lapsing, timeout=6) == Close.TOKEN_EXPIRED
    await send(renewing, {"op": "ping"})
    assert await recv(renewing) == {"type": "PONG"}
    await renewing.close()


async def test_reauth_as_another_user_is_refused(ws_server: WsServer, tokens: Tokens) -> None:
    ws = await authed(ws_server, tokens, 1)
    await send(ws, {"op": "auth", "token": tokens.issue_access(2)})
    assert (await recv(ws))["code"] == "user_mismatch"
    await ws.close()


async def test_snapshot_on_subscribe(
    ws_server: WsServer, tokens: Tokens, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await seed(redis_client, keys, 11, index=1000, skew=10, pseq=5)
    ws = await authed(ws_server, tokens)
    await send(ws, {"op": "subscribe", "ids": [11]})
    snap = await recv(ws)
    assert snap["type"] == "PRICE_UPDATE"
    assert (snap["id"], snap["price"], snap["seq"], snap["snap"]) == (11, 1010, 5, True)
    await ws.close()


async def test_unknown_instrument_is_an_error(ws_server: WsServer, tokens: Tokens) -> None:
    ws = await authed(ws_server, tokens)
    await send(ws, {"op": "subscribe", "ids": [999_999]})
    err = await recv(ws)
    assert (err["type"], err["code"], err["ids"]) == ("ERROR", "unknown_instrument", [999_999])
    await ws.close()


async def test_published_update_reaches_subscriber_and_unsubscribe_stops_it(
    ws_server: WsServer, tokens: Tokens, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await seed(redis_client, keys, 1, 1000, 0, 1)
    await seed(redis_client, keys, 2, 2000, 0, 1)
    ws = await authed(ws_server, tokens)
    await send(ws, {"op": "subscribe", "ids": [1, 2]})
    assert {(await recv(ws))["id"], (await recv(ws))["id"]} == {1, 2}
    assert await publish(redis_client, keys, 1, 1234, 2) == 1  # one subscribed process
    update = await recv(ws)
    assert (update["id"], update["price"], update["seq"]) == (1, 1234, 2)
    assert "snap" not in update
    await send(ws, {"op": "unsubscribe", "ids": [1]})
    await send(ws, {"op": "ping"})
    assert await recv(ws) == {"type": "PONG"}  # the unsubscribe was handled before this
    await publish(redis_client, keys, 1, 1300, 3)
    await publish(redis_client, keys, 2, 2100, 2)
    nxt = await recv(ws)
    assert (nxt["id"], nxt["seq"]) == (2, 2)
    await ws.close()


async def test_frames_on_the_wire_are_at_most_95_bytes(
    ws_server: WsServer, tokens: Tokens, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await seed(redis_client, keys, 3, 99_999, -999, 2**40)
    ws = await authed(ws_server, tokens)
    await send(ws, {"op": "subscribe", "ids": [3]})
    snapshot = await asyncio.wait_for(ws.recv(), 5)
    await redis_client.eval(  # type: ignore[misc]
        "return redis.call('PUBLISH', KEYS[1], cmsgpack.pack({type='PRICE_UPDATE', id=2147483647,"
        " price=199999, index=100000, skew=-99999, seq=1099511627776, ts=1893456000000}))",
        1,
        keys.price_channel(3),
    )
    await ws.close()
    assert 2 + len(snapshot) <= 95
    assert ws_server.hub.index == {}  # closed socket left the index


async def test_bad_input_never_hurts_others(
    ws_server: WsServer, tokens: Tokens, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await seed(redis_client, keys, 1, 1000, 0, 1)
    good = await authed(ws_server, tokens, 1)
    await send(good, {"op": "subscribe", "ids": [1]})
    await recv(good)
    bad = await authed(ws_server, tokens, 2)
    await bad.send(b"\xc1\xc1")
    assert (await recv(bad))["code"] == "bad_message"
    await send(bad, {"op": "fly"})
    assert (await recv(bad))["code"] == "unknown_op"
    await send(bad, {"op": "subscribe", "ids": list(range(1, 501))})
    assert (await recv(bad))["code"] == "too_many_ids"
    await send(bad, {"op": "subscribe", "ids": list(range(1, 10_001))})  # ~30 KB frame
    assert await closed_code(bad) == Close.MESSAGE_TOO_BIG
    await publish(redis_client, keys, 1, 1111, 2)
    assert (await recv(good))["price"] == 1111
    await good.close()


async def test_too_many_bad_messages_close_with_1008(ws_server: WsServer, tokens: Tokens) -> None:
    ws = await authed(ws_server, tokens)
    for _ in range(30):
        await ws.send(b"\xc1")
    errors = [(await recv(ws))["code"] for _ in range(19)]  # an ERROR each until the 20th
    assert errors == ["bad_message"] * 19
    assert await closed_code(ws) == Close.POLICY_VIOLATION


async def test_permessage_deflate_is_refused(ws_server: WsServer, tokens: Tokens) -> None:
    ws = await open_ws(ws_server, tokens.issue_access(1), compression="deflate")
    assert ws.response is not None
    assert "Sec-WebSocket-Extensions" not in ws.response.headers
    assert (await recv(ws))["type"] == "AUTH_OK"
    await ws.close()


async def test_a_client_that_stops_reading_does_not_delay_others(
    ws_server: WsServer, tokens: Tokens, redis_client: aioredis.Redis, keys: Keys
) -> None:
    await seed(redis_client, keys, 1, 1000, 0, 0)
    good = await authed(ws_server, tokens, 1)
    await send(good, {"op": "subscribe", "ids": [1]})
    await recv(good)
    # A peer with a tiny receive window that never reads after its handshake.
    loop = asyncio.get_running_loop()
    sock = raw_socket(2048)
    await loop.sock_connect(sock, ("127.0.0.1", ws_server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    token = tokens.issue_access(2)
    await loop.sock_sendall(
        sock,
        (
            f"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        + client_frame(msgpack.packb({"op": "subscribe", "ids": [1]})),
    )

    async def both_subscribed() -> bool:  # its subscribe waits for the user lookup (held)
        return len(ws_server.hub.index.get(1, ())) == 2

    await await_for(both_subscribed, 5, "the non-reading socket's subscription")
    before = REGISTRY.get_sample_value("ftl_ws_slow_closes_total") or 0.0
    conflated_before = REGISTRY.get_sample_value("ftl_ws_conflated_total") or 0.0
    total = 4000
    start = time.monotonic()
    for base in range(0, total, 500):
        pipe = redis_client.pipeline(transaction=False)
        for seq in range(base + 1, base + 501):
            pipe.eval(
                "return redis.call('PUBLISH', KEYS[1], cmsgpack.pack({type='PRICE_UPDATE', id=1,"
                " price=1000, seq=tonumber(ARGV[1]), ts=0}))",
                1,
                keys.price_channel(1),
                seq,
            )
        await pipe.execute()
    seqs = [(await recv(good))["seq"]]
    while seqs[-1] != total:
        seqs.append((await recv(good))["seq"])
    elapsed = time.monotonic() - start
    # In order and up to the newest; a burst may be conflated (latest wins) even for a reader.
    assert seqs == sorted(set(seqs))
    assert elapsed < 10
    assert (REGISTRY.get_sample_value("ftl_ws_conflated_total") or 0.0) > conflated_before

    async def slow_closed() -> bool:
        return (REGISTRY.get_sample_value("ftl_ws_slow_closes_total") or 0.0) > before

    await await_for(slow_closed, 10, "the non-reading socket to be closed as slow")
    # Once it reads again, the last thing it gets is a close frame with code 4008.
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    sock.close()
    marker = b"\x88" + bytes([2 + len(b"slow consumer")]) + int(Close.SLOW_CONSUMER).to_bytes(2, "big")
    assert marker in data or (REGISTRY.get_sample_value("ftl_ws_closes_total", {"code": "4008"}) or 0) > 0
    await good.close()


async def test_health_endpoints_on_the_ws_port(ws_server: WsServer) -> None:
    async def get(path: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", ws_server.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        status = int(data.split(b" ", 2)[1])
        return status, data.split(b"\r\n\r\n", 1)[1]

    assert (await get("/healthz"))[0] == 200

    async def ready() -> bool:
        return (await get("/readyz"))[0] == 200

    await await_for(ready, 5, "/readyz to answer 200")
    status, body = await get("/metrics")
    assert status == 200
    assert b"ftl_ws_sockets" in body
    assert (await get("/nope"))[0] == 404
    ws_server.health.draining = True
    assert (await get("/readyz"))[0] == 503


async def test_a_text_frame_closes_with_1003(ws_server: WsServer, tokens: Tokens) -> None:
    """Every message is a binary MessagePack map: text is not read as if it were binary."""
    ws = await authed(ws_server, tokens)
    await ws.send(msgpack.packb({"op": "ping"}).decode("latin-1"))  # the same bytes, as text
    assert await closed_code(ws) == Close.UNSUPPORTED_DATA


async def _raw_frames_until_close(port: int, token: str, frame: bytes) -> int:
    """Upgrade by hand, send ``frame`` as it is, and return the close code the server sends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    writer.write(frame)
    try:
        while True:  # server frames are unmasked; payloads here are short (< 126 bytes)
            b0, b1 = await asyncio.wait_for(reader.readexactly(2), 5)
            payload = await reader.readexactly(b1 & 0x7F)
            if b0 & 0x0F == 0x8:
                return int.from_bytes(payload[:2], "big")
    finally:
        writer.close()


async def test_a_frame_with_rsv_bits_closes_with_1002(ws_server: WsServer, tokens: Tokens) -> None:
    """RFC 6455 5.2: RSV bits without a negotiated extension fail the connection."""
    payload = msgpack.packb({"op": "ping"})
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = bytes([0x80 | 0x40 | 0x2, 0x80 | len(payload)]) + mask + masked  # FIN, RSV1, binary
    assert await _raw_frames_until_close(ws_server.port, tokens.issue_access(1), frame) == 1002


async def test_the_product_serves_no_bench_paths(ws_server: WsServer) -> None:
    """/bench/* lives in scripts/hooks (the ws benchmark only), never in the ws role itself."""
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{ws_server.port}/healthz")).status_code == 200
        assert (await http.get(f"http://127.0.0.1:{ws_server.port}/bench/stats")).status_code != 200
