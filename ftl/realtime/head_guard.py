"""The first protocol of every ws-port connection: the request head, read before picows sees it.

picows 2.3 hard-codes a 16 KiB head limit and resets the connection there, with no reply and no
hook; this guard answers 431 (too large) or 408 (not complete in time) with a lingering close, and
hands a complete head and whatever follows it to picows (``transport.set_protocol``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast

from picows import WSUpgradeResponse

from ftl import logs

log = logs.get(__name__)

MAX_REQUEST_HEAD = 16 * 1024
"""Bytes of a request head (request line, headers, blank line) the port reads; a longer one is
answered 431. As the api's hypercorn (h11_max_incomplete_size). picows 2.3 has the same limit
hard-coded but resets the connection there, with no reply and no hook: :class:`HeadGuard`."""
LINGER_S = 2.0
"""After a 408/431 the rest of the request is read and dropped this long, so that the client
reads the reply instead of a TCP reset; then the socket is dropped."""


def json_response(status: int, body: dict[str, Any]) -> WSUpgradeResponse:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if status == 200:
        response: WSUpgradeResponse = WSUpgradeResponse.create_ok_response(data, headers)
    else:
        response = WSUpgradeResponse.create_error_response(status, data, headers)
    return response


class HeadGuard(asyncio.Protocol):
    """The first protocol of every connection: reads the request head before picows does. Above
    :data:`MAX_REQUEST_HEAD` it answers 431, incomplete at the handshake timeout 408 (then a
    lingering close); else it hands the head and what follows to picows (``set_protocol``)."""

    def __init__(self, inner: Callable[[], asyncio.BufferedProtocol], timeout_s: float) -> None:
        self.inner, self.timeout_s, self.head, self.refused = inner, timeout_s, bytearray(), False
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.timer = asyncio.get_running_loop().call_later(
            self.timeout_s, self.refuse, 408, "request_timeout", "no complete request head in time"
        )

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # the rest of a refused request: dropped
        seen = len(self.head)
        head: bytes | bytearray = data  # mostly the whole head comes in one read: no copy
        if seen:
            self.head += data
            head = self.head
        end = head.find(b"\r\n\r\n", max(0, seen - 3))
        if (end + 4 if end >= 0 else len(head)) > MAX_REQUEST_HEAD:
            self.refuse(431, "headers_too_large", f"the request head is over {MAX_REQUEST_HEAD} bytes")
        elif end >= 0:
            self.hand_over(head)
        elif not seen:
            self.head += data

    def eof_received(self) -> bool:
        return False  # the client is done (it read the refusal, or gave up): close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def refuse(self, status: int, code: str, message: str) -> None:
        assert self.transport is not None and self.timer is not None
        self.timer.cancel()
        log.debug("ws request refused", status=status, read=len(self.head))
        self.refused, self.head = True, bytearray()
        response = json_response(status, {"error": {"code": code, "message": message}})
        response.headers["Connection"] = "close"
        self.transport.write(bytes(response.to_bytes()))
        self.transport.write_eof()
        self.timer = asyncio.get_running_loop().call_later(LINGER_S, self.transport.abort)

    def hand_over(self, head: bytes | bytearray) -> None:
        assert self.transport is not None and self.timer is not None
        self.timer.cancel()
        protocol = self.inner()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        data = memoryview(head)
        while data and not self.transport.is_closing():
            buffer = memoryview(protocol.get_buffer(len(data)))
            size = min(len(buffer), len(data))
            buffer[:size] = data[:size]
            protocol.buffer_updated(size)
            data = data[size:]
        data.release()
        self.head = bytearray()
