"""Serve an ASGI app with hypercorn on one port until told to stop.

A connection may wait at most ``idle_s`` for a complete request head: hypercorn's keep-alive timer
runs from the connection's start (and from the end of each response) until a head has been
parsed, whatever trickles in meanwhile, so a client sending a byte now and then (slowloris) is cut
at that deadline like an idle keep-alive connection. A head over 16 KiB is refused by h11.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


class AsgiServer:
    def __init__(self, app: Any, host: str, port: int, name: str, idle_s: float = 20.0) -> None:
        self.app = app
        self.name = name
        self.config = Config()
        self.config.bind = [f"{host}:{port}"]
        self.config.graceful_timeout = 2.0
        self.config.keep_alive_timeout = idle_s
        self.config.accesslog = None
        self.config.errorlog = logging.getLogger(f"hypercorn.{name}")
        self.config.include_server_header = False
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await serve(self.app, self.config, shutdown_trigger=self._stop.wait)

    def stop(self) -> None:
        self._stop.set()
