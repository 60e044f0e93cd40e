"""Modules that serve HTTP with starlette and hypercorn: the api and ws roles."""

from __future__ import annotations

from ftl.runtime.context import Runtime
from ftl.web.server import AsgiServer


class ApiService:
    name = "api"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: AsgiServer | None = None

    async def start(self) -> None:
        from ftl.web.api import build_api

        rt = self.runtime
        app = build_api(rt.stores, rt.health)
        self.server = AsgiServer(app, rt.settings.host, rt.settings.api_port, "api")

    async def run(self) -> None:
        assert self.server is not None
        await self.server.run()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class WsService:
    name = "ws"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: AsgiServer | None = None

    async def start(self) -> None:
        from ftl.realtime.app import build_ws_app

        rt = self.runtime
        app = build_ws_app(rt.stores, rt.health)
        self.server = AsgiServer(app, rt.settings.host, rt.settings.ws_port, "ws")

    async def run(self) -> None:
        assert self.server is not None
        await self.server.run()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
