"""Modules that serve HTTP: the api role (starlette on hypercorn) and the ws role (picows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ftl.runtime.context import Runtime
from ftl.web.server import AsgiServer, ServerKind

if TYPE_CHECKING:
    from ftl.realtime.replica import Replica


class ApiService:
    name = "api"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: AsgiServer | None = None

    async def start(self) -> None:
        from ftl.web.api import build_api

        rt = self.runtime
        app = build_api(rt.stores, rt.health)
        s = rt.settings
        kind = cast(ServerKind, s.api_server)
        self.server = AsgiServer(app, s.host, s.api_port, "api", idle_s=s.http_idle_s, kind=kind)

    async def run(self) -> None:
        assert self.server is not None
        await self.server.run()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class WsService:
    """The ws role: a picows server (not hypercorn) with ``workers`` processes on FTL_WS_PORT."""

    name = "ws"

    def __init__(self, runtime: Runtime, workers: int | None = None) -> None:
        self.runtime = runtime
        self.workers = workers if workers is not None else runtime.settings.ws_workers
        self.replica: Replica | None = None

    async def start(self) -> None:
        from ftl.realtime.replica import Replica

        rt = self.runtime
        assert rt.redis_url is not None
        self.replica = Replica(rt.settings, rt.stores.redis, rt.redis_url, rt.health, workers=self.workers)
        await self.replica.start()

    async def run(self) -> None:
        assert self.replica is not None
        await self.replica.run()

    async def stop(self) -> None:
        if self.replica is not None:
            await self.replica.stop()
