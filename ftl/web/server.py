"""Serve an ASGI app with hypercorn on one port until told to stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


class AsgiServer:
    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        self.app = app
        self.name = name
        self.config = Config()
        self.config.bind = [f"{host}:{port}"]
        self.config.graceful_timeout = 2.0
        self.config.keep_alive_timeout = 75.0
        self.config.accesslog = None
        self.config.errorlog = logging.getLogger(f"hypercorn.{name}")
        self.config.include_server_header = False
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await serve(self.app, self.config, shutdown_trigger=self._stop.wait)

    def stop(self) -> None:
        self._stop.set()
