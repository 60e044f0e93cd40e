"""The connections a role works with: Redis (with its Lua scripts) and the PostgreSQL pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from ftl import logs
from ftl.config import Settings
from ftl.health import Health
from ftl.persistence import migrations
from ftl.persistence.keys import Keys
from ftl.persistence.scripts import Scripts

log = logs.get(__name__)


@dataclass
class Stores:
    settings: Settings
    redis: aioredis.Redis
    pg: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]
    scripts: Scripts
    keys: Keys
    ledger_pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] | None = None
    """The trade ledger's own pool (ledger.py): index look-ups only, whatever the statistics
    say (``enable_seqscan=off``), so a plan cached while a table was small never scans it whole.
    Falls back to ``pg``."""

    @property
    def ledger_pg(self) -> AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]:
        return self.ledger_pool if self.ledger_pool is not None else self.pg

    @classmethod
    async def open(
        cls, settings: Settings, redis_url: str, database_url: str, *, migrate: bool = False
    ) -> Stores:
        """Connect, check (or apply) migrations, load every Lua script."""
        if migrate:
            applied = migrations.migrate_sync(database_url)
            if applied:
                log.info("migrations applied", versions=applied)
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await migrations.check(conn)
        client = aioredis.Redis.from_url(
            redis_url,
            socket_connect_timeout=1.0,
            socket_keepalive=True,
            health_check_interval=10,
            max_connections=512,
        )
        # After a PostgreSQL restart a pooled connection is dead: the main pool checks on
        # checkout, so a request gets a live one (the ledger's pool, on the hot path, retries).
        pool = await _pool(database_url, 2, 20, check=AsyncConnectionPool.check_connection)
        ledger_pool = await _pool(database_url, 1, 8, options="-c enable_seqscan=off")
        scripts = Scripts(client)
        await scripts.load_all()
        return cls(settings, client, pool, scripts, Keys(settings.redis_prefix), ledger_pool)

    def register_checks(self, health: Health) -> None:
        async def redis_ok() -> None:
            await self.redis.ping()

        async def postgres_ok() -> None:
            async with self.pg.connection(timeout=1.0) as conn:
                await conn.execute("SELECT 1")

        health.add("redis", redis_ok)
        health.add("postgres", postgres_ok)

    async def close(self) -> None:
        if self.ledger_pool is not None:
            await self.ledger_pool.close()
        await self.pg.close()
        await self.redis.aclose()


async def _pool(
    url: str, min_size: int, max_size: int, *, options: str = "", check: Any = None
) -> AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]:
    kwargs: dict[str, Any] = {"autocommit": True}
    if options:
        kwargs["options"] = options
    pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
        url, min_size=min_size, max_size=max_size, open=False, timeout=5.0, kwargs=kwargs, check=check
    )
    await pool.open(wait=True, timeout=15.0)
    return pool
