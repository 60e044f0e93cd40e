"""The ws role's server: picows on one port for /ws, /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiofastnet
import redis.asyncio as aioredis
from picows import (
    WSAutoPingStrategy,
    WSListener,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # see WsServer._ws_protocol

from ftl import logs
from ftl.auth.principal import Principal
from ftl.health import Health, metrics_payload
from ftl.persistence.keys import Keys
from ftl.realtime import metrics
from ftl.realtime.feed import PriceFeed
from ftl.realtime.head_guard import HeadGuard, json_response
from ftl.realtime.hub import Hub
from ftl.realtime.protocol import AUTH_TIMEOUT_S, MAX_CLIENT_FRAME, Close
from ftl.realtime.session import Session
from ftl.realtime.snapshots import Snapshotter

log = logs.get(__name__)
_PICOWS_LOG = logging.getLogger("picows.ws")

Verify = Callable[[str], Principal]
"""Checks an access token; raises on any invalid or expired one."""

Route = WSListener | WSUpgradeResponseWithListener | None
KNOWN_USERS_CACHED = 100_000
"""User ids a worker remembers as existing (then it forgets them all and asks Redis again)."""


@dataclass(frozen=True, slots=True)
class WsOptions:
    """Tuning of one worker; defaults are the production values (docs/protocol.md)."""

    high_water: int = 16 * 1024
    """Bytes queued in user space before a socket is paused and its updates conflated."""
    slow_after_s: float = 5.0
    """A socket paused this long is closed with 4008."""
    max_buffer: int = 256 * 1024
    """A paused socket whose queue passes this is closed with 4008 at once."""
    ping_interval_s: float = 25.0
    pong_timeout_s: float = 10.0
    send_buffer: int | None = None
    """SO_SNDBUF of each socket (kernel memory a non-reading client can pin); None: autotuned."""
    tick_s: float = 1.0
    auth_timeout_s: float = AUTH_TIMEOUT_S
    handshake_timeout_s: float = 5.0
    """A connection without a complete request head by then is answered 408 and closed."""
    backlog: int = 4096


class KnownUsers:
    """Whether the user of a verified token exists, asked of Redis (the ws role has no PostgreSQL).

    Every user has a hot wallet hash ``wallet:{id}``: a login loads it, the rebuild after a Redis
    loss loads every wallet, nothing deletes one. Without the boot marker Redis is being rebuilt
    and a missing hash proves nothing: the user is let in, as when Redis does not answer (the
    token's signature stands; the check only keeps tokens of users that never existed, or of a
    wiped database, out). The lookups of one loop iteration share one pipeline, and one batch
    is in flight at a time: a reconnect storm costs Redis a few round trips, not one per socket.
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys, limit: int = KNOWN_USERS_CACHED) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit
        self.known: set[int] = set()
        self.batches = 0
        self._waiting: dict[int, asyncio.Future[bool]] = {}
        self._batch: asyncio.Task[None] | None = None

    async def exists(self, user_id: int) -> bool:
        if user_id in self.known:
            return True
        future = self._waiting.get(user_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[user_id] = future
            if self._batch is None:
                self._batch = asyncio.create_task(self._run(), name="ws-known-users")
        return await asyncio.shield(future)

    async def _run(self) -> None:
        waiting: dict[int, asyncio.Future[bool]] = {}
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let the lookups of this loop iteration join the batch
                waiting, self._waiting = self._waiting, {}
                found = await self._lookup(list(waiting))
                for user_id, future in waiting.items():
                    if not future.done():
                        future.set_result(found[user_id])
        finally:
            self._batch = None
            for future in (*waiting.values(), *self._waiting.values()):
                future.cancel()  # only left when cancelled (shutdown): no caller waits forever
            self._waiting = {}

    async def _lookup(self, user_ids: list[int]) -> dict[int, bool]:
        self.batches += 1
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.exists(self.keys.boot_marker)
                for user_id in user_ids:
                    pipe.exists(self.keys.wallet(user_id))
                replies = await pipe.execute()
        except Exception as exc:  # Redis down or odd: the signed token stands
            log.warning("ws user check unavailable; letting users in", error=repr(exc), users=len(user_ids))
            return dict.fromkeys(user_ids, True)
        if not replies[0]:  # Redis is being rebuilt: no wallet proves anything yet
            return dict.fromkeys(user_ids, True)
        found = {user_id: bool(reply) for user_id, reply in zip(user_ids, replies[1:], strict=True)}
        if len(self.known) + len(found) > self.limit:
            self.known.clear()
        self.known.update(user_id for user_id, ok in found.items() if ok)
        return found


class WsServer:
    """One worker process of a ws replica; several share the port with SO_REUSEPORT."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        verify: Verify,
        health: Health,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        options: WsOptions | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.verify = verify
        self.health = health
        self.host = host
        self.requested_port = port
        self.reuse_port = reuse_port
        self.options = options or WsOptions()
        self.hub = Hub(slow_after_s=self.options.slow_after_s, max_buffer=self.options.max_buffer)
        self.snapshots = Snapshotter(redis, keys, self.hub)
        self.feed = PriceFeed(redis, keys, self.hub, self.snapshots)
        self.users = KnownUsers(redis, keys)
        self.sessions: set[Session] = set()
        self.ready: tuple[bool, dict[str, str]] = (False, {"starting": "yes"})
        self.tasks: list[asyncio.Task[None]] = []
        self.server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = asyncio.Event()
        self._empty = asyncio.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

        async def feed_ok() -> None:
            if not self.feed.subscribed.is_set():
                raise RuntimeError("not subscribed to price:*")

        self.health.add("price_feed", feed_ok)
        self.tasks = [
            asyncio.create_task(self.feed.run(), name="ws-feed"),
            asyncio.create_task(self._ticker(), name="ws-ticker"),
            asyncio.create_task(self._readiness(), name="ws-readiness"),
        ]
        self._ws_protocol()  # a picows without this constructor fails here, not on a connection
        self.server = await aiofastnet.create_server(
            self.loop,
            lambda: HeadGuard(self._ws_protocol, self.options.handshake_timeout_s),
            self.host,
            self.requested_port,
            reuse_port=self.reuse_port,
            backlog=self.options.backlog,
        )
        log.info("ws worker listening", host=self.host, port=self.port, reuse_port=self.reuse_port)

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Stop accepting, close every socket with 1001, release the tasks."""
        if self.server is not None:
            self.server.close()
        for session in tuple(self.sessions):
            session.kill(Close.GOING_AWAY, "server shutting down")
        if self.sessions:
            self._empty.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), 2.0)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.snapshots.close()
        self._stopped.set()

    # --- sessions -------------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid access token, None otherwise. A :class:`Principal` is never
        the house account (0); whether its user exists is asked next (:class:`KnownUsers`)."""
        try:
            return self.verify(token)
        except Exception:
            return None

    def attach(self, session: Session) -> None:
        assert session.client is not None
        self.sessions.add(session)
        self.hub.add(session.client)
        metrics.SOCKETS.inc()

    def detach(self, session: Session) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        if session.client is not None:
            self.hub.remove(session.client)
        metrics.SOCKETS.dec()
        if not self.sessions:
            self._empty.set()
        if session.authed:
            metrics.AUTHENTICATED.dec()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick_s)
            now, wall = time.monotonic(), time.time()
            for session in tuple(self.sessions):
                session.tick(now, wall)
            self.hub.sweep(now)

    async def _readiness(self) -> None:
        while True:
            self.ready = await self.health.readiness()
            await asyncio.sleep(1.0)

    # --- HTTP routing of the upgrade request ----------------------------------------------

    def _ws_protocol(self) -> asyncio.BufferedProtocol:
        """The protocol ``picows.ws_create_server`` builds per connection (picows 2.3 api.py, same
        arguments in order): picows has no public way to take a transport it did not accept. No
        handshake timer (HeadGuard had one; a whole head is answered at once), no auto ping (the
        ticker pings), auto pong, 1 KiB initial read buffer."""
        protocol: asyncio.BufferedProtocol = WSProtocol(
            None, None, False, self._route, _PICOWS_LOG, True, None,
            False, 20.0, 20.0, WSAutoPingStrategy.PING_WHEN_IDLE, True, MAX_CLIENT_FRAME, None, 1024,
        )  # fmt: skip
        return protocol

    def _route(self, request: WSUpgradeRequest) -> Route:
        path = request.path.split(b"?", 1)[0]
        if path == b"/ws":
            return self._upgrade(request)
        if path == b"/healthz":
            return _json(200, {"status": "ok"})
        if path == b"/readyz":
            ok, detail = self.ready
            if self.health.draining:
                ok, detail = False, {**detail, "draining": "yes"}
            return _json(200 if ok else 503, detail)
        if path == b"/metrics":
            payload, ctype = metrics_payload()
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_ok_response(payload, {"Content-Type": ctype}), None
            )
        return None

    def _upgrade(self, request: WSUpgradeRequest) -> Route:
        if self.health.draining:
            return _error(503, "draining", "this worker is shutting down")
        header = request.headers.get("Authorization")
        if header is None:
            return Session(self, None)
        scheme, _, token = header.strip().partition(" ")
        principal = self.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            return _error(401, "unauthorized", "invalid or expired access token")
        return Session(self, principal)


def _json(status: int, body: dict[str, Any]) -> WSUpgradeResponseWithListener:
    return WSUpgradeResponseWithListener(json_response(status, body), None)


def _error(status: int, code: str, message: str) -> WSUpgradeResponseWithListener:
    return _json(status, {"error": {"code": code, "message": message}})
