"""``price_ticks``: a batched writer (one COPY per batch), the history reader, and state loading."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ftl import logs
from ftl.pricing.model import IndexChange

log = logs.get(__name__)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_COPY = "COPY price_ticks (instrument_id, ts, index_price, rating) FROM STDIN"


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _rating(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(f"{value:.2f}")


def tick_rows(changes: Sequence[IndexChange]) -> list[tuple[int, datetime, int, Decimal | None]]:
    """The ``price_ticks`` rows of the changes that repriced an instrument."""
    return [(c.instrument_id, _ts(c.ts_ms), c.index_cents, _rating(c.rating)) for c in changes if c.repriced]


async def insert_ticks(conn: psycopg.AsyncConnection[Any], changes: Sequence[IndexChange]) -> int:
    """Write the ticks of ``changes`` with one COPY. Returns the number of rows."""
    rows = tick_rows(changes)
    if not rows:
        return 0
    async with conn.cursor() as cur, cur.copy(_COPY) as copy:
        for row in rows:
            await copy.write_row(row)
    return len(rows)


Pool = AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]


class TickWriter:
    """Buffers index changes and writes them in batches (one COPY per batch, in a transaction).

    ``add`` never waits for PostgreSQL. ``run`` flushes every ``interval_s``; ``flush`` writes now.
    While PostgreSQL is down, rows stay buffered (at most ``max_buffer``; the oldest are dropped
    and counted) and go out with the next successful flush. A batch PostgreSQL refuses as data
    (e.g. an unknown instrument) is dropped and logged, so it cannot block the rows behind it.
    """

    def __init__(
        self, pool: Pool, *, interval_s: float = 0.2, max_batch: int = 5000, max_buffer: int = 200_000
    ) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.max_buffer = max_buffer
        self._buffer: list[IndexChange] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self.written = 0
        self.dropped = 0

    def add(self, changes: Sequence[IndexChange]) -> None:
        self._buffer.extend(c for c in changes if c.repriced)
        overflow = len(self._buffer) - self.max_buffer
        if overflow > 0:
            del self._buffer[:overflow]
            self.dropped += overflow
            log.warning("tick buffer full: oldest ticks dropped", dropped=overflow)
        if len(self._buffer) >= self.max_batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> int:
        """Write everything buffered, a batch at a time. Returns rows written; raises if PG is down."""
        written = 0
        async with self._lock:
            while self._buffer:
                batch = self._buffer[: self.max_batch]
                try:
                    async with self.pool.connection() as conn, conn.transaction():
                        n = await insert_ticks(conn, batch)
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    log.error("tick batch refused; dropped", rows=len(batch), error=str(exc))
                    self.dropped += len(batch)
                    n = 0
                del self._buffer[: len(batch)]
                written += n
        self.written += written
        return written

    async def run(self) -> None:
        """Flush periodically until ``aclose``."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except (psycopg.Error, OSError) as exc:
                log.warning("tick flush failed; will retry", pending=self.pending, error=repr(exc))

    async def aclose(self) -> None:
        """Stop ``run`` and write what is left (best effort)."""
        self._stopping = True
        self._wake.set()
        try:
            await self.flush()
        except (psycopg.Error, OSError) as exc:
            log.warning("final tick flush failed", pending=self.pending, error=repr(exc))


async def read_ticks(
    conn: psycopg.AsyncConnection[Any],
    instrument_id: int,
    *,
    limit: int = DEFAULT_LIMIT,
    before: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``GET /api/instruments/{id}/ticks``: newest first, ``ts`` in epoch ms, ``before`` exclusive (ms).

    Returns ``{"items": [{"ts", "index_price", "rating"}]}``; ``rating`` is a number or null.
    Raises ValueError for a limit outside 1..1000 or a negative ``before``.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    if before is not None and before < 0:
        raise ValueError("before must be a timestamp in ms >= 0")
    query = (
        "SELECT (extract(epoch FROM ts) * 1000)::bigint, index_price, rating FROM price_ticks "
        "WHERE instrument_id = %s{cond} ORDER BY ts DESC, id DESC LIMIT %s"
    )
    if before is None:
        cur = await conn.execute(query.format(cond=""), (instrument_id, limit))
    else:
        cur = await conn.execute(query.format(cond=" AND ts < %s"), (instrument_id, _ts(before), limit))
    items = [
        {"ts": int(ts), "index_price": int(price), "rating": None if rating is None else float(rating)}
        for ts, price, rating in await cur.fetchall()
    ]
    return {"items": items}
