"""Migrations apply once, in order; the schema enforces the money rules."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from ftl.persistence import migrations


@pytest.fixture
def empty_db(pg_server_url: str) -> Iterator[str]:
    name = f"ftl_mig_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server_url.rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_pending_then_applied_once(empty_db: str) -> None:
    async with await psycopg.AsyncConnection.connect(empty_db) as conn:
        assert await migrations.pending(conn) == [m.version for m in migrations.available()]
        with pytest.raises(migrations.PendingMigrations, match="ftl migrate"):
            await migrations.check(conn)
    first = migrations.migrate_sync(empty_db)
    assert first == [m.version for m in migrations.available()]
    assert migrations.migrate_sync(empty_db) == []
    async with await psycopg.AsyncConnection.connect(empty_db) as conn:
        await migrations.check(conn)


def test_every_design_table_exists(database_url: str) -> None:
    expected = {
        "users",
        "wallets",
        "instruments",
        "cfd_positions",
        "trades",
        "price_ticks",
        "leaderboard_snapshots",
        "refresh_tokens",
        "schema_migrations",
    }
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        money = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'wallets' AND column_name IN ('available', 'locked')"
        ).fetchall()
    assert expected <= {r[0] for r in rows}
    assert {t for _, t in money} == {"bigint"}


def test_user_balance_cannot_go_negative_but_house_can(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        uid = conn.execute(
            "INSERT INTO users (email) VALUES (%s) RETURNING id",
            (f"m{secrets.token_hex(4)}@x.test",),
        ).fetchone()
        assert uid is not None
        conn.execute("INSERT INTO wallets (user_id, available) VALUES (%s, 0)", (uid[0],))
        conn.commit()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE wallets SET available = -1 WHERE user_id = %s", (uid[0],))
        conn.rollback()
        conn.execute("UPDATE wallets SET available = available - 5 WHERE user_id = 0")
        conn.rollback()


def test_idempotency_key_unique_per_user(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'trades_idempotency_unique'"
        ).fetchone()
    assert cur is not None and cur[0] == "UNIQUE (user_id, idempotency_key)"
