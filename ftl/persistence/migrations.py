"""Plain SQL migrations from ``sql/``: applied in order, each in its own transaction, recorded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ftl.resources import sql_dir

_LOCK_ID = 0x46544C  # "FTL": one migrator at a time

_CREATE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()


class PendingMigrations(RuntimeError):
    """The database is behind the code."""

    def __init__(self, versions: list[str]) -> None:
        self.versions = versions
        super().__init__(
            f"{len(versions)} database migration(s) pending ({', '.join(versions)}): run `ftl migrate` first"
        )


def available(folder: Path | None = None) -> list[Migration]:
    folder = folder or sql_dir()
    found = [Migration(p.stem, p) for p in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql"))]
    if not found:
        raise FileNotFoundError(f"no migrations in {folder}")
    return found


def migrate_sync(url: str, folder: Path | None = None) -> list[str]:
    """Apply every pending migration; return the versions applied."""
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(_CREATE)
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in available(folder):
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES (%s)",
                        (migration.version,),
                    )
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


async def pending(conn: psycopg.AsyncConnection[Any], folder: Path | None = None) -> list[str]:
    """Versions in ``sql/`` that the database has not recorded."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    done: set[str] = set()
    if row is not None and row[0]:
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {str(r[0]) for r in await cur.fetchall()}
    return [m.version for m in available(folder) if m.version not in done]


async def check(conn: psycopg.AsyncConnection[Any], folder: Path | None = None) -> None:
    """Raise :class:`PendingMigrations` when the schema is behind the code."""
    versions = await pending(conn, folder)
    if versions:
        raise PendingMigrations(versions)
