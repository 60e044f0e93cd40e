"""The api's HTTP servers (hypercorn, uvicorn, granian): requests are served, a request head
must arrive whole in time and fit."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import cast

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ftl.web.server import SERVERS, AsgiServer, ServerKind

IDLE_S = 1.0


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=SERVERS)
def kind(request: pytest.FixtureRequest) -> ServerKind:
    return cast(ServerKind, request.param)


@pytest.fixture
async def port(anyio_backend: str, kind: ServerKind) -> AsyncIterator[int]:
    number = _free_port()
    app = Starlette(routes=[Route("/", hello)])
    server = AsgiServer(app, "127.0.0.1", number, "test", idle_s=IDLE_S, kind=kind)
    task = asyncio.create_task(server.run())
    deadline = time.monotonic() + 10
    while True:  # poll until it listens
        try:
            _, w = await asyncio.open_connection("127.0.0.1", number)
            w.close()
            break
        except OSError:
            assert time.monotonic() < deadline, "server did not start"
            await asyncio.sleep(0.02)
    yield number
    server.stop()
    await task


async def test_a_trickled_request_head_is_cut_at_the_deadline(port: int, kind: ServerKind) -> None:
    """Slowloris: a byte of header every 0.2 s keeps no connection open past the idle deadline."""
    if kind == "uvicorn":
        pytest.skip("uvicorn has no request-head deadline (documented in ftl/web/server.py)")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: api\r\nX-Slow: ")
    started = time.monotonic()
    closed_after = None
    while time.monotonic() - started < IDLE_S + 5:
        try:
            writer.write(b"x")
            await writer.drain()
            if await asyncio.wait_for(reader.read(100), 0.2) == b"":
                closed_after = time.monotonic() - started
                break
        except TimeoutError:
            continue
        except ConnectionError:
            closed_after = time.monotonic() - started
            break
    writer.close()
    assert closed_after is not None, "the trickling connection stayed open"
    assert closed_after < IDLE_S + 2


async def test_a_request_after_an_idle_pause_within_the_deadline_is_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: api\r\n\r\n")
    assert (await reader.readuntil(b"hi")).startswith(b"HTTP/1.1 200")
    writer.write(b"GET / HTTP/1.1\r\nHost: api\r\n\r\n")  # keep-alive: a second request
    assert (await reader.readuntil(b"hi")).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_an_oversized_request_head_gets_a_4xx_not_a_reset(port: int, kind: ServerKind) -> None:
    """h11 refuses a head still incomplete past 16 KiB (a head read whole in one go may be
    larger: up to hypercorn's 64 KiB read); granian refuses a head over its 64 KiB buffer."""
    if kind == "uvicorn":
        pytest.skip("uvicorn (httptools) has no request-head size limit (documented)")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + b"a" * 200_000 + b"\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status.startswith(b"HTTP/1.1 4"), status
