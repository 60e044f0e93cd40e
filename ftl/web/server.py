"""Serve an ASGI app on one port until told to stop: hypercorn, uvicorn (httptools) or granian,
chosen by ``FTL_API_SERVER`` (docs/benchmarks.md measures them on the trade route).

A connection may wait at most ``idle_s`` for a complete request head:

- hypercorn: its keep-alive timer runs from the connection's start (and from the end of each
  response) until a head has been parsed, whatever trickles in meanwhile, so a client sending a
  byte now and then (slowloris) is cut at that deadline like an idle keep-alive connection; a head
  still incomplete past 16 KiB is refused by h11 (431);
- granian: its HTTP/1 header read timeout (``idle_s``) and its keep-alive; a head over 64 KiB is
  refused;
- uvicorn: keep-alive only (``idle_s``); it has no header deadline and no head size limit, so put
  it behind a proxy that has both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

SERVERS = ("hypercorn", "uvicorn", "granian")
MAX_HEAD = 64 * 1024
"""Granian's read buffer: a request head that does not fit is refused."""
ServerKind = Literal["hypercorn", "uvicorn", "granian"]


class AsgiServer:
    def __init__(
        self, app: Any, host: str, port: int, name: str, idle_s: float = 20.0, kind: ServerKind = "hypercorn"
    ) -> None:
        self.app = app
        self.name = name
        self.host = host
        self.port = port
        self.idle_s = idle_s
        self.kind = kind
        self._stop = asyncio.Event()
        self._stopper: Any = None
        if kind == "hypercorn":
            from hypercorn.config import Config

            self.config = Config()
            self.config.bind = [f"{host}:{port}"]
            self.config.graceful_timeout = 2.0
            self.config.keep_alive_timeout = idle_s
            self.config.accesslog = None
            self.config.errorlog = logging.getLogger(f"hypercorn.{name}")
            self.config.include_server_header = False

    async def run(self) -> None:
        if self.kind == "hypercorn":
            from hypercorn.asyncio import serve

            await serve(self.app, self.config, shutdown_trigger=self._stop.wait)
        elif self.kind == "uvicorn":
            await self._uvicorn()
        else:
            await self._granian()

    async def _uvicorn(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            http="httptools",
            loop="none",  # the role's running loop
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=True,
            timeout_keep_alive=max(1, round(self.idle_s)),
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # the runtime's
        self._stopper = server
        if self._stop.is_set():
            return
        await server.serve()

    async def _granian(self) -> None:
        from granian.constants import Interfaces
        from granian.http import HTTP1Settings
        from granian.server.embed import Server

        server = Server(
            self.app,
            address=self.host,
            port=self.port,
            interface=Interfaces.ASGI,
            websockets=False,
            backlog=4096,
            http1_settings=HTTP1Settings(
                header_read_timeout=int(self.idle_s * 1000), max_buffer_size=MAX_HEAD
            ),
            log_enabled=False,
        )
        self._stopper = server
        if self._stop.is_set():
            return
        await server.serve()

    def stop(self) -> None:
        self._stop.set()
        if self.kind == "uvicorn" and self._stopper is not None:
            self._stopper.should_exit = True
        elif self.kind == "granian" and self._stopper is not None:
            self._stopper.stop()
