"""Trades from Lua into PostgreSQL: hot path write, outbox drain, claim, order independence."""

from __future__ import annotations

from typing import Any

from ftl.persistence.ledger import ENTRY_FIELDS, Outcome, fold_all, persist_trade
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import CloseResult, OpenResult
from ftl.worker.flusher import GROUP, Flusher
from tests.persistence.support import make_instrument, make_trader, trading


async def _row(stores: Stores, sql: str, *args: Any) -> tuple[Any, ...] | None:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(sql, args)
        return await cur.fetchone()


async def _open(stores: Stores, user: int, iid: int, key: str, qty: int = 10) -> OpenResult:
    res = await trading(stores).open(
        user_id=user,
        instrument_id=iid,
        side="long",
        qty=qty,
        leverage=2,
        acceptable_price=10**6,
        idempotency_key=key,
    )
    assert isinstance(res, OpenResult)
    return res


async def test_hot_path_write_is_idempotent_and_matches_redis(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    res = await _open(stores, user, iid, "k1")
    async with stores.pg.connection() as conn:
        await fold_all(conn)  # other tests' trades (the database is shared)
    before = await _row(stores, "SELECT available FROM wallets WHERE user_id = 0")
    async with stores.pg.connection() as conn:
        assert await persist_trade(conn, res.entry, stores.keys.prefix) is Outcome.WRITTEN
        # same trade again: nothing new
        assert await persist_trade(conn, res.entry, stores.keys.prefix) is Outcome.PRESENT
    trade = await _row(
        stores, "SELECT kind, qty, price, fee, idempotency_key FROM trades WHERE id = %s", res.trade_id
    )
    assert trade == ("open", 10, res.price, res.fee, "k1")
    wallet = await _row(stores, "SELECT available, locked, seq FROM wallets WHERE user_id = %s", user)
    assert wallet == (res.available, res.locked, res.trade_id)
    pos = await _row(stores, "SELECT qty, status, margin FROM cfd_positions WHERE id = %s", res.position_id)
    assert pos == (10, "open", res.margin)
    # The house row is not written on the hot path: the fold adds the fee.
    assert await _row(stores, "SELECT available FROM wallets WHERE user_id = 0") == before
    async with stores.pg.connection() as conn:
        assert await fold_all(conn) >= 1
    after = await _row(stores, "SELECT available FROM wallets WHERE user_id = 0")
    assert before is not None and after is not None and after[0] - before[0] == res.fee


async def test_close_waits_for_its_open(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    opened = await _open(stores, user, iid, "o")
    closed = await trading(stores).close(
        user_id=user, position_id=opened.position_id, acceptable_price=1, idempotency_key="c"
    )
    assert isinstance(closed, CloseResult)
    async with stores.pg.connection() as conn:
        # the close depends on the open (the user's previous trade): it waits for it
        assert await persist_trade(conn, closed.entry, stores.keys.prefix) is Outcome.GAP
        assert await _row(stores, "SELECT id FROM trades WHERE id = %s", closed.trade_id) is None
        assert await persist_trade(conn, opened.entry, stores.keys.prefix) is Outcome.WRITTEN
        assert await persist_trade(conn, closed.entry, stores.keys.prefix) is Outcome.WRITTEN
    pos = await _row(stores, "SELECT qty, status FROM cfd_positions WHERE id = %s", opened.position_id)
    assert pos == (0, "closed")
    wallet = await _row(stores, "SELECT available, locked FROM wallets WHERE user_id = %s", user)
    assert wallet == (closed.available, closed.locked)


async def test_flusher_drains_the_outbox_once(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    results = [await _open(stores, user, iid, f"k{i}", qty=1 + i) for i in range(3)]
    async with stores.pg.connection() as conn:  # the hot path wrote the first one already
        await persist_trade(conn, results[0].entry, stores.keys.prefix)
    flusher = Flusher(stores)
    stats = await flusher.flush_once()
    assert (stats.trades, stats.new_trades) == (3, 2)
    assert await stores.redis.xlen(stores.keys.outbox) == 0
    again = await flusher.flush_once()
    assert again.trades == 0
    count = await _row(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user)
    assert count == (3,)


async def test_entries_of_a_dead_consumer_are_claimed(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    res = await _open(stores, user, iid, "claimed")
    dead = Flusher(stores, consumer="dead")
    await dead.ensure_group()
    got = await stores.redis.xreadgroup(GROUP, "dead", {stores.keys.outbox: ">"}, count=10)
    assert got and len(got[0][1]) == 1  # read, never acknowledged: the consumer died mid-batch
    alive = Flusher(stores, consumer="alive", claim_idle_ms=0)
    stats = await alive.flush_once()
    assert stats.new_trades == 1
    assert await _row(stores, "SELECT id FROM trades WHERE id = %s", res.trade_id) == (res.trade_id,)
    pending = await stores.redis.xpending(stores.keys.outbox, GROUP)
    assert pending["pending"] == 0


async def test_dirty_instrument_state_is_flushed(stores: Stores) -> None:
    iid = await make_instrument(stores)
    res = await trading(stores).update_index(instrument_id=iid, index_price=1234, status="halted")
    assert not hasattr(res, "code")
    await Flusher(stores).flush_once()
    row = await _row(stores, "SELECT index_price, status, pseq > 0 FROM instruments WHERE id = %s", iid)
    assert row == (1234, "halted", True)
    assert not await stores.redis.exists(stores.keys.dirty)


async def test_one_batch_with_a_whole_position_life_ends_at_its_last_trade(stores: Stores) -> None:
    user, other, iid = await make_trader(stores), await make_trader(stores), await make_instrument(stores)
    opened = await _open(stores, user, iid, "life-o", qty=10)
    await _open(stores, other, iid, "other", qty=3)
    part = await trading(stores).close(
        user_id=user, position_id=opened.position_id, qty=4, acceptable_price=1, idempotency_key="life-p"
    )
    last = await trading(stores).close(
        user_id=user, position_id=opened.position_id, acceptable_price=1, idempotency_key="life-c"
    )
    assert isinstance(part, CloseResult) and isinstance(last, CloseResult)
    async with stores.pg.connection() as conn:
        await fold_all(conn)  # other tests' trades (the database is shared)
    before = await _row(stores, "SELECT available FROM wallets WHERE user_id = 0")
    stats = await Flusher(stores).flush_once()
    assert stats.new_trades == 4
    pos = await _row(stores, "SELECT qty, status, seq FROM cfd_positions WHERE id = %s", opened.position_id)
    assert pos == (0, "closed", last.trade_id)
    wallet = await _row(stores, "SELECT available, locked, seq FROM wallets WHERE user_id = %s", user)
    assert wallet == (last.available, last.locked, last.trade_id)
    # the fold (same pass) leaves the house row where Redis has it; the instrument's open
    # interest follows the open positions
    house = await stores.redis.hget(stores.keys.wallet(0), "available")
    hrow = await _row(stores, "SELECT available FROM wallets WHERE user_id = 0")
    assert hrow is not None and before is not None and house is not None
    assert hrow[0] - before[0] == int(house)  # this test's Redis house started at 0
    ins = await _row(stores, "SELECT skew, long_units, short_units FROM instruments WHERE id = %s", iid)
    assert ins == (3, 3, 0)


async def test_the_outbox_entry_has_the_declared_fields_in_order(stores: Stores) -> None:
    """Lua builds the entry (lua/include/trade.lua), Python declares it (ledger.ENTRY_FIELDS):
    the reply of every trade script holds exactly those fields."""
    user, iid = await make_trader(stores), await make_instrument(stores)
    opened = await _open(stores, user, iid, "fields-open", qty=4)
    closed = await trading(stores).close(
        user_id=user, position_id=opened.position_id, qty=1, acceptable_price=1,
        idempotency_key="fields-close", instrument_id=iid,
    )  # fmt: skip
    assert isinstance(closed, CloseResult)
    for result in (opened, closed):
        assert sorted(result.entry) == sorted(ENTRY_FIELDS)
