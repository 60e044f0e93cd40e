"""Modules without a web stack: embedded servers, stores, and the flusher's process shell."""

from __future__ import annotations

import asyncio
import contextlib

from ftl import logs
from ftl.health_http import HealthServer
from ftl.persistence.embedded import DataDirLock, EmbeddedPostgres, EmbeddedRedis
from ftl.persistence.stores import Stores
from ftl.runtime.context import Runtime

log = logs.get(__name__)


async def _wait(done: asyncio.Event, timeout: float = 4.0) -> None:
    """Let a loop finish its pass before the stores it uses close."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)


async def _seed_demo_once(stores: Stores) -> None:
    """Local work: the bundled 48 squads become instruments when there are none yet."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM instruments")
        row = await cur.fetchone()
    if row is not None and row[0] == 0:
        from ftl.trading.seed import demo_seeds, write_instruments

        async with stores.pg.connection() as conn:
            n = await write_instruments(conn, demo_seeds())
        log.info("demo instruments seeded", instruments=n)


class EmbeddedServers:
    """Starts redis-server and PostgreSQL from their wheels when no URL is configured."""

    name = "embedded"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.lock: DataDirLock | None = None
        self.redis: EmbeddedRedis | None = None
        self.postgres: EmbeddedPostgres | None = None

    async def start(self) -> None:
        rt = self.runtime
        if rt.redis_url and rt.database_url:
            log.info("using external servers; no embedded ones")
            return
        data_dir = rt.settings.data_dir
        self.lock = DataDirLock(data_dir)
        self.lock.acquire()
        try:
            if not rt.redis_url:
                self.redis = EmbeddedRedis(data_dir)
                await self.redis.start()
                rt.redis_url = self.redis.url
            if not rt.database_url:
                self.postgres = EmbeddedPostgres(data_dir)
                await self.postgres.start()
                rt.database_url = self.postgres.url
        except BaseException:
            self._stop_all()
            raise
        log.info(
            "embedded servers up",
            redis=rt.redis_url,
            postgres=rt.database_url,
            data_dir=str(data_dir.resolve()),
        )

    async def run(self) -> None:
        watchers = [
            s.server.watch() for s in (self.redis, self.postgres) if s is not None and s.server is not None
        ]
        if watchers:
            await asyncio.gather(*watchers)
        else:
            await asyncio.Event().wait()

    def _stop_all(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.lock is not None:
            self.lock.release()

    async def stop(self) -> None:
        self._stop_all()


class StoresService:
    """Opens Redis and PostgreSQL for the roles; refuses to start with pending migrations."""

    name = "stores"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        rt = self.runtime
        assert rt.redis_url is not None and rt.database_url is not None
        stores = await Stores.open(rt.settings, rt.redis_url, rt.database_url, migrate=rt.auto_migrate)
        stores.register_checks(rt.health)
        rt.stores_ = stores
        if rt.settings.seed_demo:
            await _seed_demo_once(stores)

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()
        if self.runtime.stores_ is not None:
            await self.runtime.stores_.close()


class PricesService:
    """The api role's price feed (FTL_FEED); one replica polls at a time (leader lock)."""

    name = "prices"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stopped = asyncio.Event()
        self._done = asyncio.Event()

    async def start(self) -> None:
        pass

    async def run(self) -> None:
        from ftl.pricing.runner import PriceFeed

        try:
            await PriceFeed(self.runtime.stores).run(self._stopped)
        finally:
            self._done.set()

    async def stop(self) -> None:
        self._stopped.set()
        await _wait(self._done)


class FlusherService:
    """The flusher role: its health port and the Redis → PostgreSQL flush loop."""

    name = "flusher"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        s = runtime.settings
        self.server = HealthServer(runtime.health, s.host, s.flusher_port)
        self._stopped = asyncio.Event()
        self._done = asyncio.Event()

    async def start(self) -> None:
        await self.server.start()
        log.info("flusher health port open", port=self.server.port)

    async def run(self) -> None:
        from ftl.worker.flusher import Flusher

        try:
            await Flusher(self.runtime.stores).run(self._stopped)
        finally:
            self._done.set()

    async def stop(self) -> None:
        self._stopped.set()
        await _wait(self._done)
        await self.server.close()
