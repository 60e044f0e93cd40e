"""One WebSocket connection: authentication, subscriptions, replies and closing (picows listener)."""

from __future__ import annotations

import asyncio
import socket
import time
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from ftl import logs
from ftl.auth.principal import Principal
from ftl.realtime import metrics, protocol
from ftl.realtime.hub import Client
from ftl.realtime.protocol import MAX_ERRORS, Close

if TYPE_CHECKING:
    from ftl.realtime.server import WsServer

log = logs.get(__name__)

ABORT_AFTER_S = 2.0
"""A socket told to close that does not finish its close handshake is dropped after this."""
MAX_HELD = 16
"""Messages a socket may send while its user is being looked up; one more closes it (1008)."""


class Session(WSListener):
    """Protocol state of one socket; the :class:`Client` inside it is what the hub writes to.

    A verified token (upgrade header or first ``auth``) is accepted once its user is known to
    exist (:class:`~ftl.realtime.server.KnownUsers`); messages arriving meanwhile are held and
    handled after ``AUTH_OK``.
    """

    def __init__(self, server: WsServer, offered: Principal | None) -> None:
        super().__init__()
        self.server = server
        self.offered = offered
        """The principal of the upgrade's Bearer header, accepted once its user is known."""
        self.principal: Principal | None = None
        self.held: list[bytes] | None = None
        """Messages received while the user is looked up (None: no lookup running)."""
        self.check: asyncio.Task[bool] | None = None
        self.transport: WSTransport | None = None
        self.client: Client | None = None
        now = time.monotonic()
        self.connected_at = now
        self.last_rx = now
        self.ping_sent_at = 0.0
        self.errors = 0
        self.closing = False
        self.authed = False

    # --- picows callbacks -----------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        raw = transport.underlying_transport
        opts = self.server.options
        raw.set_write_buffer_limits(high=opts.high_water, low=opts.high_water // 4)
        if opts.send_buffer is not None:
            sock = raw.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, opts.send_buffer)
        self.client = Client(raw.write, raw.get_write_buffer_size, self.kill)
        self.server.attach(self)
        if self.offered is not None:
            self._check_user(self.offered)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closing = True  # nothing more is sent (a pending user check finds it gone)
        self.server.detach(self)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.server.hub.pause(self.client)

    def resume_writing(self) -> None:
        if self.client is not None:
            self.server.hub.resume(self.client)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.last_rx = time.monotonic()
        self.ping_sent_at = 0.0
        kind = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:  # RFC 6455 5.2: no extension was negotiated
            self.kill(Close.PROTOCOL_ERROR, "RSV bits set without an extension")
        elif kind == WSMsgType.TEXT:  # every message is a binary MessagePack map (docs/protocol.md)
            self.kill(Close.UNSUPPORTED_DATA, "text frames are not accepted: send binary MessagePack")
        elif kind == WSMsgType.BINARY or kind == WSMsgType.CONTINUATION:
            if not frame.fin or kind == WSMsgType.CONTINUATION:
                self._invalid(protocol.Invalid("bad_message", "fragmented messages are not accepted"))
            else:
                self.handle(frame.get_payload_as_bytes())
        elif kind == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    # --- protocol -------------------------------------------------------------------------

    def handle(self, data: bytes) -> None:
        if self.closing:
            return
        if self.held is not None:
            if len(self.held) >= MAX_HELD:
                self.kill(Close.POLICY_VIOLATION, "too many messages before AUTH_OK")
            else:
                self.held.append(data)
            return
        command = protocol.decode_client(data)
        if self.principal is None and not isinstance(command, protocol.Auth):
            self.kill(Close.UNAUTHORIZED, "authenticate first")
            return
        if isinstance(command, protocol.Subscribe):
            self._subscribe(command.ids)
        elif isinstance(command, protocol.Ping):
            self._reply(protocol.PONG)
        elif isinstance(command, protocol.Unsubscribe):
            assert self.client is not None
            self.server.hub.unsubscribe(self.client, command.ids)
        elif isinstance(command, protocol.Auth):
            self._auth(command.token)
        else:
            self._invalid(command)

    def _subscribe(self, ids: tuple[int, ...]) -> None:
        assert self.client is not None
        added = self.server.hub.subscribe(self.client, ids)
        if isinstance(added, protocol.Invalid):
            self._invalid(added)
        else:
            self.server.snapshots.request(self.client, added)

    def _auth(self, token: str) -> None:
        principal = self.server.authenticate(token)
        if principal is None:
            if self.principal is None:
                self.kill(Close.UNAUTHORIZED, "invalid token")
            else:
                self._invalid(protocol.Invalid("bad_token", "the token was rejected"))
            return
        if self.principal is None:
            self._check_user(principal)
        elif principal.user_id != self.principal.user_id:
            self._invalid(protocol.Invalid("user_mismatch", "re-auth must be for the same user"))
        else:
            self._accept(principal)  # the same user: known to exist since the first auth

    def _check_user(self, principal: Principal) -> None:
        """Accept ``principal`` once its user is known to exist; close with 4001 if it is not."""
        self.held = []
        self.check = self.server.loop.create_task(self.server.users.exists(principal.user_id))
        self.check.add_done_callback(partial(self._checked, principal))

    def _checked(self, principal: Principal, task: asyncio.Task[bool]) -> None:
        held, self.held, self.check = self.held or [], None, None
        if self.closing:
            return
        if task.cancelled() or task.exception() is not None or not task.result():
            self.kill(Close.UNAUTHORIZED, "unknown user")
            return
        self._accept(principal)
        for data in held:
            self.handle(data)

    def _accept(self, principal: Principal) -> None:
        self.principal = principal
        if not self.authed:
            self.authed = True
            metrics.AUTHENTICATED.inc()
        self._reply(protocol.auth_ok(principal.user_id, principal.expires_at))

    def _reply(self, data: bytes) -> None:
        if self.client is not None:
            self.server.hub.control(self.client, data)

    def _invalid(self, invalid: protocol.Invalid) -> None:
        self.errors += 1
        metrics.CLIENT_ERRORS.labels(invalid.code).inc()
        if self.errors >= MAX_ERRORS:
            self.kill(Close.POLICY_VIOLATION, "too many bad messages")
            return
        self._reply(protocol.error(invalid.code, invalid.message))

    # --- timers (driven by the server's sweep) --------------------------------------------

    def tick(self, now: float, wall: float) -> None:
        """Auth deadline, token expiry, server pings and the pong timeout."""
        if self.closing or self.transport is None:
            return
        if self.principal is None:
            if now - self.connected_at > self.server.options.auth_timeout_s:
                self.kill(Close.UNAUTHORIZED, "no auth in time")
            return
        if self.principal.expires_at <= wall:
            self.kill(Close.TOKEN_EXPIRED, "access token expired")
            return
        opts = self.server.options
        if self.ping_sent_at:
            if now - self.ping_sent_at > opts.pong_timeout_s:
                self.kill(Close.PONG_TIMEOUT, "no pong")
        elif now - self.last_rx > opts.ping_interval_s:
            self.ping_sent_at = now
            self.transport.send_ping()

    def kill(self, code: Close, reason: str) -> None:
        """Send a close frame with ``code``; drop the connection if the peer does not finish."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        metrics.CLOSES.labels(str(int(code))).inc()
        transport = self.transport
        if self.client is not None:
            self.server.hub.remove(self.client)
        if not transport.is_close_frame_sent:
            transport.send_close(cast(Any, int(code)), reason.encode())
        self.server.loop.call_later(ABORT_AFTER_S, transport.disconnect, False)
        log.debug("closing socket", code=int(code), reason=reason)
