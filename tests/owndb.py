"""A PostgreSQL database of a test's own (cloned from a migrated template), for tests whose
checks span the whole database: the audit, conservation of money, the fault simulator.

Registered as a plugin in tests/conftest.py.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from ftl.config import Settings
from ftl.persistence.migrations import migrate_sync
from ftl.persistence.stores import Stores
from tests.helpers import with_database


@pytest.fixture(scope="module")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A migrated database to clone."""
    name = f"ftl_tmpl_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate_sync(with_database(pg_server_url, name))
    try:
        yield name
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def own_db(pg_server_url: str, template_db: str) -> Iterator[str]:
    name = f"ftl_own_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        yield with_database(pg_server_url, name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def own_stores(
    settings: Settings, redis_url: str, own_db: str, redis_client: object, anyio_backend: str
) -> AsyncIterator[Stores]:
    """Stores on this test's own database and this test's key prefix."""
    opened = await Stores.open(settings.replace(redis_url=redis_url, database_url=own_db), redis_url, own_db)
    try:
        yield opened
    finally:
        await opened.close()
