"""Shared fixtures: real Redis and PostgreSQL, embedded by default or given by FTL_TEST_* URLs.

Each test run gets its own PostgreSQL database and each test its own Redis key prefix, so runs
against a shared server (this machine's 127.0.0.1:6379 and :5432) never collide.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette

from ftl.config import Settings
from ftl.health import Health
from ftl.persistence.embedded import EmbeddedPostgres, EmbeddedRedis
from ftl.persistence.keys import Keys
from ftl.persistence.migrations import migrate_sync
from ftl.persistence.scripts import Scripts
from ftl.persistence.stores import Stores
from ftl.web.api import build_api
from tests.helpers import with_database

pytest_plugins = ["tests.owndb"]  # a database of a test's own: own_db, own_stores

_SERVER_FIXTURES = {"redis_url", "pg_server_url", "database_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and inspect.iscoroutinefunction(fn):
            item.add_marker(pytest.mark.anyio)
        # Anything that talks to Redis or PostgreSQL is an integration test: CI runs these a
        # second time against this machine's own servers.
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def data_root() -> Iterator[Path]:
    """A data dir the unprivileged PostgreSQL account can reach (pytest's tmp is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="ftl-test-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(data_root: Path) -> Iterator[str]:
    given = os.environ.get("FTL_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = EmbeddedRedis(data_root / "redis-data")
    asyncio.run(server.start())
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_server_url(data_root: Path) -> Iterator[str]:
    """An admin URL of a PostgreSQL server (its maintenance database)."""
    given = os.environ.get("FTL_TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = EmbeddedPostgres(data_root / "pg")
    asyncio.run(server.start())
    try:
        yield server.admin_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database of this test run; dropped at the end."""
    name = f"ftl_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(pg_server_url, name)
    migrate_sync(url)
    try:
        yield url
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def keys() -> Keys:
    """A key prefix of this test alone."""
    return Keys(prefix=f"t{secrets.token_hex(4)}:")


@pytest.fixture
async def redis_client(redis_url: str, keys: Keys) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        found = [k async for k in client.scan_iter(match=f"{keys.prefix}*", count=1000)]
        if found:
            await client.delete(*found)
        await client.aclose()


@pytest.fixture
async def scripts(redis_client: aioredis.Redis) -> Scripts:
    loaded = Scripts(redis_client)
    await loaded.load_all()
    return loaded


@pytest.fixture
def settings(keys: Keys, tmp_path: Path) -> Settings:
    """Settings of one test: its own Redis prefix and data dir, a fixed JWT key. Override per package."""
    return Settings(
        env="test",
        data_dir=tmp_path,
        redis_prefix=keys.prefix,
        jwt_keys=(("test-1", secrets.token_urlsafe(32)),),
    )


@pytest.fixture
async def stores(
    settings: Settings,
    redis_url: str,
    database_url: str,
    redis_client: aioredis.Redis,
    anyio_backend: str,
) -> AsyncIterator[Stores]:
    """A real ``Stores`` on the test servers, prefixed like ``keys`` (its keys are removed afterwards)."""
    opened = await Stores.open(
        settings.replace(redis_url=redis_url, database_url=database_url), redis_url, database_url
    )
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def api_app(stores: Stores) -> AsyncIterator[Starlette]:
    """The api role's app (``build_api``) with its lifespan running."""
    app = build_api(stores, Health())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(api_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the api app (in process, client address 127.0.0.1)."""
    transport = httpx.ASGITransport(app=api_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client
