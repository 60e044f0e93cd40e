"""The api's side of the ledger: group-committed writes and idempotency look-ups.

Trades that finish their Lua call at about the same time share one PostgreSQL transaction
(:class:`~ftl.persistence.groupcommit.Batcher`); so do the look-ups of idempotency keys Redis
does not know. Settings: ``FTL_LEDGER_BATCH_MAX``, ``FTL_LEDGER_BATCH_WAIT_MS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from prometheus_client import Histogram
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ftl.persistence import ledger
from ftl.persistence.groupcommit import Batcher
from ftl.persistence.ledger import Outcome

_T = TypeVar("_T")
Pool = AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]

BATCH = Histogram(
    "ftl_ledger_batch_size",
    "Trades (write) or keys (lookup) per group-committed PostgreSQL statement",
    ["op"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


class LedgerWriter:
    def __init__(
        self,
        pool: Pool | Callable[[], Pool],
        prefix: str,
        *,
        max_size: int = 64,
        max_wait_s: float = 0.001,
        concurrency: int = 4,
        timeout_s: float = 2.0,
    ) -> None:
        self._pool = pool
        self.prefix = prefix
        self.unreachable = False  # the last write failed to reach PostgreSQL
        self.timeout_s = timeout_s
        self._writes: Batcher[Mapping[str, Any], Outcome | Exception] = Batcher(
            self._write, max_size=max_size, max_wait_s=max_wait_s, concurrency=concurrency
        )
        self._lookups: Batcher[tuple[int, str], dict[str, str] | None] = Batcher(
            self._lookup, max_size=max_size, max_wait_s=max_wait_s, concurrency=concurrency
        )
        self._used: Batcher[int, list[str]] = Batcher(
            self._used_keys, max_size=max_size, max_wait_s=max_wait_s, concurrency=concurrency
        )

    @property
    def pool(self) -> Pool:
        return self._pool() if callable(self._pool) else self._pool

    @pool.setter
    def pool(self, pool: Pool) -> None:
        self._pool = pool

    async def write(self, row: Mapping[str, Any]) -> Outcome | Exception:
        """Write one parsed entry (:func:`ledger.params`) with whatever else is being written.

        Returns its outcome, or the data error that refused it alone; raises a connection or
        pool error (the write may or may not have happened: write again to learn which).
        """
        return await self._writes.submit(row)

    async def recorded(self, user_id: int, key: str) -> dict[str, str] | None:
        """The recorded trade of this idempotency key, as an outbox entry, or None."""
        return await self._lookups.submit((user_id, key))

    async def used_keys(self, user_id: int) -> list[str]:
        """Every idempotency key PostgreSQL holds for this user (batched with other users')."""
        return await self._used.submit(user_id)

    async def reachable(self) -> None:
        """Raise the connection error when the last write could not reach PostgreSQL and it
        still cannot be reached (a ``SELECT 1``): while the ledger is down, trades are refused
        before their script runs (503 ``database_unavailable``, nothing traded) rather than run
        in Redis with an outcome nobody can confirm."""
        if not self.unreachable:
            return
        async with self.pool.connection(timeout=min(self.timeout_s, 0.5)) as conn:
            await conn.execute("SELECT 1")
        self.unreachable = False

    async def _write(self, rows: Sequence[Mapping[str, Any]]) -> list[Outcome | Exception]:
        BATCH.labels("write").observe(len(rows))
        try:
            async with self.pool.connection(timeout=self.timeout_s) as conn:
                out = await ledger.write_each(conn, self.prefix, rows)
        except (psycopg.OperationalError, PoolTimeout, OSError):
            self.unreachable = True
            raise
        self.unreachable = False
        return [out[int(r["trade_id"])] for r in rows]

    async def _lookup(self, keys: Sequence[tuple[int, str]]) -> list[dict[str, str] | None]:
        BATCH.labels("lookup").observe(len(keys))
        found = await self._retrying(lambda conn: ledger.recorded(conn, list(dict.fromkeys(keys))))
        return [found.get(k) for k in keys]

    async def _used_keys(self, user_ids: Sequence[int]) -> list[list[str]]:
        BATCH.labels("used_keys").observe(len(user_ids))
        found = await self._retrying(lambda conn: ledger.used_keys(conn, list(dict.fromkeys(user_ids))))
        return [found[u] for u in user_ids]

    async def _retrying(self, read: Callable[[psycopg.AsyncConnection[Any]], Awaitable[_T]]) -> _T:
        """A read on a pooled connection; a connection PostgreSQL's restart broke: once more, on
        a new one."""
        for attempt in range(2):
            try:
                async with self.pool.connection(timeout=self.timeout_s) as conn:
                    return await read(conn)
            except psycopg.OperationalError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._writes.aclose()
        await self._lookups.aclose()
        await self._used.aclose()
