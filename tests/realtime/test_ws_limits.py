"""The request head on the ws port: a head above MAX_REQUEST_HEAD is answered 431 and closed cleanly
(picows alone resets the connection), a browser-sized one still upgrades, a stalled one gets 408."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ftl.auth.tokens import Tokens
from ftl.persistence.keys import Keys
from ftl.realtime.head_guard import MAX_REQUEST_HEAD, HeadGuard
from ftl.realtime.server import WsServer
from tests.realtime.conftest import TEST_OPTIONS, open_ws, recv, start_server


def upgrade_head(extra: str = "", size: int | None = None) -> bytes:
    """A WebSocket upgrade request head; with ``size``, padded to exactly that many bytes."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}"
    )
    if size is not None:
        pad = size - len(head) - len("X-Pad: \r\n\r\n")
        head += f"X-Pad: {'p' * pad}\r\n"
    data = (head + "\r\n").encode()
    assert size is None or len(data) == size
    return data


async def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send ``data``, read until the server closes (or ``timeout``); (bytes read, closed by a FIN).

    A TCP reset raises: that is the failure this module is about."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        received = b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not reader.at_eof() and loop.time() < deadline:
            with_timeout = asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
            try:
                received += await with_timeout
            except TimeoutError:
                break
        return received, reader.at_eof()
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def upgrade_status(port: int, data: bytes) -> int:
    """Send ``data`` and return the status of the reply (the socket stays open on a 101)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return status_of(await asyncio.wait_for(reader.readuntil(b"\r\n"), 5))
    finally:
        writer.close()


def sockets_gauge() -> float:
    return REGISTRY.get_sample_value("ftl_ws_sockets") or 0.0


async def test_a_60_kib_authorization_header_is_answered_431_then_closed(
    ws_server: WsServer, tokens: Tokens
) -> None:
    before = sockets_gauge()
    head = upgrade_head(f"Authorization: Bearer {'a' * 60 * 1024}\r\n")
    response, closed = await exchange(ws_server.port, head)
    assert response.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), response[:200]
    headers, body = response.split(b"\r\n\r\n", 1)
    assert b"\r\nConnection: close" in headers
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    assert closed  # a FIN after the reply, not a reset
    assert not ws_server.sessions
    assert sockets_gauge() == before
    # The same through a real client, and the server still upgrades the next request.
    with pytest.raises(InvalidStatus) as info:
        await open_ws(ws_server, "a" * 60 * 1024)
    assert info.value.response.status_code == 431
    ws = await open_ws(ws_server, tokens.issue_access(1))
    assert (await recv(ws))["type"] == "AUTH_OK"
    await ws.close()


async def test_a_browser_sized_8_kib_cookie_still_upgrades(ws_server: WsServer, tokens: Tokens) -> None:
    headers = {"Authorization": f"Bearer {tokens.issue_access(1)}", "Cookie": "session=" + "c" * 8192}
    ws = await connect(f"ws://127.0.0.1:{ws_server.port}/ws", additional_headers=headers, compression=None)
    assert (await recv(ws))["type"] == "AUTH_OK"
    await ws.close()


async def test_the_limit_counts_the_whole_head(ws_server: WsServer) -> None:
    """Exactly MAX_REQUEST_HEAD bytes (blank line included) upgrade; one byte more is a 431."""
    assert await upgrade_status(ws_server.port, upgrade_head(size=MAX_REQUEST_HEAD)) == 101
    response, closed = await exchange(ws_server.port, upgrade_head(size=MAX_REQUEST_HEAD + 1))
    assert status_of(response) == 431
    assert closed


async def test_an_oversized_head_on_another_path_is_431_too(ws_server: WsServer) -> None:
    response, closed = await exchange(ws_server.port, b"GET /healthz HTTP/1.1\r\nX: " + b"x" * 70_000)
    assert status_of(response) == 431
    assert closed


async def test_a_head_that_never_completes_is_answered_408(
    redis_client: aioredis.Redis, keys: Keys, tokens: Tokens
) -> None:
    options = dataclasses.replace(TEST_OPTIONS, handshake_timeout_s=0.2)
    server = await start_server(redis_client, keys, tokens, options)
    try:
        response, closed = await exchange(server.port, upgrade_head()[:-2])
        assert status_of(response) == 408
        assert closed
    finally:
        await server.stop()


# --- HeadGuard alone: how the head reaches picows ------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.eof = self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def write_eof(self) -> None:
        self.eof = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True


class Inner(asyncio.BufferedProtocol):
    """Takes at most ``chunk`` bytes per get_buffer, as a small picows read buffer would."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.buffer = bytearray(chunk)
        self.received = b""
        self.made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.received += bytes(self.buffer[:nbytes])


async def test_a_head_split_anywhere_is_handed_over_whole_with_what_follows() -> None:
    head = upgrade_head() + b"\x82\x80tail"
    for cut in range(len(head) - 12, len(head) - 2):  # around the blank line
        inner = Inner(chunk=7)
        transport = FakeTransport()
        guard = HeadGuard(lambda inner=inner: inner, timeout_s=5.0)  # type: ignore[misc]
        guard.connection_made(transport)
        guard.data_received(head[:cut])
        assert (transport.protocol is inner) == (cut >= head.index(b"\r\n\r\n") + 4)
        if transport.protocol is inner:  # handed over: the transport now feeds picows directly
            inner.received += head[cut:]
        else:
            guard.data_received(head[cut:])
        assert transport.protocol is inner
        assert (inner.made, inner.received, transport.written) == (1, head, b"")
        guard.connection_lost(None)


async def test_an_oversized_head_is_refused_without_reaching_picows() -> None:
    transport = FakeTransport()
    guard = HeadGuard(lambda: pytest.fail("handed over"), timeout_s=5.0)
    guard.connection_made(transport)
    for _ in range(MAX_REQUEST_HEAD // 1000):
        guard.data_received(b"x" * 1000)
    assert transport.written == b""
    guard.data_received(b"x" * 1000 + b"\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 431 ")
    assert transport.eof and transport.protocol is None
    guard.data_received(b"more of the same")  # dropped
    assert guard.head == bytearray()
    guard.connection_lost(None)
