"""Group commit: batches form under concurrency, each caller gets its own result, one failure
stays with its caller, and batches of overlapping users never deadlock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ftl.persistence.groupcommit import Batcher
from ftl.persistence.ledger import Outcome, params, write_each, write_rows
from ftl.persistence.ledger_writer import LedgerWriter
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import OpenResult
from tests.persistence.support import make_instrument, make_trader, trading


async def test_concurrent_items_share_batches_and_get_their_own_results() -> None:
    batches: list[int] = []

    async def run(items: Sequence[int]) -> list[int]:
        batches.append(len(items))
        await asyncio.sleep(0.005)  # a round trip
        return [i * 10 for i in items]

    b: Batcher[int, int] = Batcher(run, max_size=8, max_wait_s=0.001, concurrency=2)
    got = await asyncio.gather(*(b.submit(i) for i in range(40)))
    assert got == [i * 10 for i in range(40)]
    assert sum(batches) == 40 and max(batches) <= 8
    assert len(batches) <= 10  # 40 items, at most 8 a batch: they were grouped, not one by one


async def test_a_failing_batch_fails_only_its_own_callers() -> None:
    async def run(items: Sequence[int]) -> list[int]:
        if 3 in items:
            raise RuntimeError("boom")
        return list(items)

    b: Batcher[int, int] = Batcher(run, max_size=1, max_wait_s=0, concurrency=4)
    results = await asyncio.gather(*(b.submit(i) for i in range(6)), return_exceptions=True)
    assert [r for r in results if isinstance(r, Exception)] == [results[3]]
    assert [r for r in results if not isinstance(r, Exception)] == [0, 1, 2, 4, 5]


async def test_a_lone_item_waits_at_most_max_wait() -> None:
    b: Batcher[int, int] = Batcher(lambda items: _echo(items), max_size=64, max_wait_s=0.001)
    assert await asyncio.wait_for(b.submit(7), 1.0) == 7


async def _echo(items: Sequence[int]) -> list[int]:
    return list(items)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        Batcher(_echo, max_size=0)


async def _opens(stores: Stores, users: list[int], iid: int, tag: str) -> list[OpenResult]:
    out = []
    for i, user in enumerate(users):
        res = await trading(stores).open(
            user_id=user, instrument_id=iid, side="long", qty=1 + i % 3, leverage=2,
            acceptable_price=10**6, idempotency_key=f"{tag}{i}",
        )  # fmt: skip
        assert isinstance(res, OpenResult)
        out.append(res)
    return out


async def test_trades_of_many_users_commit_in_shared_transactions(stores: Stores) -> None:
    iid = await make_instrument(stores)
    users = [await make_trader(stores) for _ in range(30)]
    results = await _opens(stores, users, iid, "g")
    writer = LedgerWriter(stores.pg, stores.keys.prefix, max_size=16, max_wait_s=0.002)
    outcomes = await asyncio.gather(*(writer.write(params(r.entry)) for r in results))
    assert outcomes == [Outcome.WRITTEN] * 30
    again = await asyncio.gather(*(writer.write(params(r.entry)) for r in results))
    assert again == [Outcome.PRESENT] * 30  # a ledger write that wrote nothing is "present"
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM trades WHERE id = ANY(%s)",
            ([r.trade_id for r in results],),
        )
        assert await cur.fetchone() == (30, 30)
        cur = await conn.execute(
            "SELECT count(*) FROM ledger_pending WHERE trade_id = ANY(%s)", ([r.trade_id for r in results],)
        )
        assert await cur.fetchone() == (30,)
    await writer.aclose()


async def test_one_bad_trade_does_not_fail_the_others_in_its_batch(stores: Stores) -> None:
    iid = await make_instrument(stores)
    users = [await make_trader(stores) for _ in range(4)]
    results = await _opens(stores, users, iid, "b")
    rows = [params(r.entry) for r in results]
    rows[2]["w_available"] = -5  # a wallet row PostgreSQL refuses (CHECK): this trade alone fails
    async with stores.pg.connection() as conn:
        with pytest.raises(Exception, match="wallets_user_non_negative"):
            await write_rows(conn, stores.keys.prefix, rows)  # one statement: all or nothing
        out = await write_each(conn, stores.keys.prefix, rows)
    assert [out[r["trade_id"]] for r in rows[:2] + rows[3:]] == [Outcome.WRITTEN] * 3
    assert isinstance(out[rows[2]["trade_id"]], Exception)


async def test_overlapping_batches_in_opposite_orders_do_not_deadlock(stores: Stores) -> None:
    iid = await make_instrument(stores)
    users = [await make_trader(stores) for _ in range(12)]
    first = [params(r.entry) for r in await _opens(stores, users, iid, "x")]
    second = [params(r.entry) for r in await _opens(stores, users, iid, "y")]

    async def write(rows: list[dict[str, object]]) -> dict[int, Outcome]:
        async with stores.pg.connection() as conn:
            return await write_rows(conn, stores.keys.prefix, rows)

    # Each batch lists the users in another order; each user's second trade follows his first.
    for _ in range(5):
        a, b = await asyncio.wait_for(
            asyncio.gather(write(first[::-1] + second[::-1]), write(first + second)), 20
        )
        assert set(a.values()) | set(b.values()) <= {Outcome.WRITTEN, Outcome.PRESENT}
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM trades WHERE id = ANY(%s)", ([r["trade_id"] for r in first + second],)
        )
        assert await cur.fetchone() == (24,)
