"""The api's side of the ledger: group-committed writes and idempotency look-ups.

Trades that finish their Lua call at about the same time share one PostgreSQL transaction
(:class:`~ftl.persistence.groupcommit.Batcher`); so do the look-ups of idempotency keys Redis
does not know. Settings: ``FTL_LEDGER_BATCH_MAX``, ``FTL_LEDGER_BATCH_WAIT_MS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from prometheus_client import Histogram
from psycopg_pool import AsyncConnectionPool

from ftl.persistence import ledger
from ftl.persistence.groupcommit import Batcher
from ftl.persistence.ledger import Outcome

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
        self.timeout_s = timeout_s
        self._writes: Batcher[Mapping[str, Any], Outcome | Exception] = Batcher(
            self._write, max_size=max_size, max_wait_s=max_wait_s, concurrency=concurrency
        )
        self._lookups: Batcher[tuple[int, str], dict[str, str] | None] = Batcher(
            self._lookup, max_size=max_size, max_wait_s=max_wait_s, concurrency=concurrency
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

    async def _write(self, rows: Sequence[Mapping[str, Any]]) -> list[Outcome | Exception]:
        BATCH.labels("write").observe(len(rows))
        async with self.pool.connection(timeout=self.timeout_s) as conn:
            out = await ledger.write_each(conn, self.prefix, rows)
        return [out[int(r["trade_id"])] for r in rows]

    async def _lookup(self, keys: Sequence[tuple[int, str]]) -> list[dict[str, str] | None]:
        BATCH.labels("lookup").observe(len(keys))
        for attempt in range(2):  # a connection PostgreSQL's restart broke: once more, on a new one
            try:
                async with self.pool.connection(timeout=self.timeout_s) as conn:
                    found = await ledger.recorded(conn, list(dict.fromkeys(keys)))
                break
            except psycopg.OperationalError:
                if attempt:
                    raise
        return [found.get(k) for k in keys]

    async def aclose(self) -> None:
        await self._writes.aclose()
        await self._lookups.aclose()
