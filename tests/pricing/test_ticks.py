"""price_ticks: the batched writer (real PostgreSQL) and the history reader."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from ftl.pricing.model import IndexChange
from ftl.pricing.ticks import TickWriter, insert_ticks, read_ticks

pytestmark = pytest.mark.anyio

T0 = 1_781_204_400_000  # ms
IDS = (910_001, 910_002)


@pytest.fixture
async def pool(
    database_url: str,
) -> AsyncIterator[AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]]:
    p: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
        database_url, min_size=1, max_size=4, open=False, kwargs={"autocommit": True}
    )
    await p.open(wait=True)
    async with p.connection() as conn:
        for iid in IDS:
            await conn.execute("DELETE FROM price_ticks WHERE instrument_id = %s", (iid,))
            await conn.execute(
                "INSERT INTO instruments (id, player_id, name, team, position, index_price, rating, "
                "depth, skew_cap) VALUES (%s, %s, 'P', 'T', 'Midfielder', 1000, 6.70, 50000, 25000)"
                " ON CONFLICT (id) DO NOTHING",
                (iid, iid + 5_000_000),
            )
    try:
        yield p
    finally:
        await p.close()


def change(iid: int, i: int, *, repriced: bool = True, rating: float | None = 6.5) -> IndexChange:
    return IndexChange(iid, iid + 5_000_000, 1000 + i, rating, T0 + 1000 * i, None, repriced)


async def test_writer_batches_and_reader_pages(pool: AsyncConnectionPool[Any]) -> None:
    writer = TickWriter(pool, max_batch=7)
    writer.add([change(IDS[0], i, rating=6.0 + i / 100) for i in range(20)])
    writer.add([change(IDS[1], 0), change(IDS[0], 99, repriced=False)])  # halt-only: no tick
    assert writer.pending == 21
    assert await writer.flush() == 21
    assert writer.pending == 0 and writer.written == 21
    async with pool.connection() as conn:
        page = await read_ticks(conn, IDS[0], limit=5)
        items = page["items"]
        assert [t["ts"] for t in items] == [T0 + 1000 * i for i in (19, 18, 17, 16, 15)]
        assert items[0] == {"ts": T0 + 19_000, "index_price": 1019, "rating": 6.19}
        older = await read_ticks(conn, IDS[0], limit=100, before=items[-1]["ts"])
        assert [t["index_price"] for t in older["items"]] == [1000 + i for i in range(14, -1, -1)]
        assert (await read_ticks(conn, IDS[1]))["items"][0]["index_price"] == 1000
        assert (await read_ticks(conn, 123_456_789))["items"] == []
        for bad in ({"limit": 0}, {"limit": 1001}, {"before": -1}):
            with pytest.raises(ValueError, match=r"limit|before"):
                await read_ticks(conn, IDS[0], **bad)


async def test_null_rating_and_one_statement(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        assert (
            await insert_ticks(conn, [change(IDS[1], 5, rating=None), change(IDS[1], 6, repriced=False)]) == 1
        )
        assert (await read_ticks(conn, IDS[1], limit=1))["items"] == [
            {"ts": T0 + 5000, "index_price": 1005, "rating": None}
        ]
        assert await insert_ticks(conn, []) == 0


async def test_refused_batch_is_dropped_and_does_not_block(pool: AsyncConnectionPool[Any]) -> None:
    writer = TickWriter(pool, max_batch=2)
    writer.add([change(999_999_999, 1), change(999_999_999, 2)])  # no such instrument: FK violation
    writer.add([change(IDS[1], 7)])
    assert await writer.flush() == 1
    assert writer.dropped == 2 and writer.pending == 0
    async with pool.connection() as conn:
        assert (await read_ticks(conn, IDS[1], limit=1))["items"][0]["index_price"] == 1007


async def test_rows_wait_while_postgres_is_down() -> None:
    dead: AsyncConnectionPool[Any] = AsyncConnectionPool(
        "postgresql://nobody@127.0.0.1:9/none", min_size=0, max_size=1, open=False, timeout=0.5
    )
    await dead.open(wait=False)
    writer = TickWriter(dead, max_buffer=3)
    try:
        writer.add([change(IDS[0], i) for i in range(5)])
        assert writer.pending == 3 and writer.dropped == 2  # bounded: the oldest go first
        with pytest.raises(psycopg.Error):
            await writer.flush()
        assert writer.pending == 3  # kept for the next flush
        await writer.aclose()  # best effort: logs, does not raise
    finally:
        await dead.close()
