"""Redis loses everything: the rebuild from PostgreSQL restores every hot key that matters."""

from __future__ import annotations

import asyncio
import time

import pytest

from ftl.persistence import recovery
from ftl.persistence.leader import LeaderLock
from ftl.persistence.ledger import Outcome, persist_trade
from ftl.persistence.recovery import ensure_hot_state, hot_state_present, rebuild
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import OpenResult, Rejected
from ftl.persistence.trade_scripts import TradingConfig, TradingScripts
from tests.persistence.support import load_used_keys, make_instrument, make_trader, trading, wipe_redis


async def test_rebuild_restores_wallets_positions_skew_counters_and_idempotency(
    stores: Stores,
) -> None:
    user, iid = await make_trader(stores, district=4), await make_instrument(stores)
    t = trading(stores)
    opened = await t.open(
        user_id=user,
        instrument_id=iid,
        side="long",
        qty=30,
        leverage=2,
        acceptable_price=10**6,
        idempotency_key="a",
        district_id=4,
    )
    short = await t.open(
        user_id=user,
        instrument_id=iid,
        side="short",
        qty=10,
        leverage=1,
        acceptable_price=1,
        idempotency_key="b",
        district_id=4,
    )
    assert isinstance(opened, OpenResult) and isinstance(short, OpenResult)
    async with stores.pg.connection() as conn:
        await persist_trade(conn, opened.entry, stores.keys.prefix)
        await persist_trade(conn, short.entry, stores.keys.prefix)
    k = stores.keys
    before_wallet = await stores.redis.hmget(k.wallet(user), "available", "locked")
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT granted + (SELECT coalesce(sum(CASE WHEN kind = 'open' THEN fee "
            "ELSE margin - payout END), 0) FROM trades) FROM wallets WHERE user_id = 0"
        )
        row = await cur.fetchone()
    assert row is not None
    before_house = str(row[0]).encode()  # every trade of the (shared) database, folded

    await wipe_redis(stores)  # Redis lost everything
    assert not await hot_state_present(stores)
    refused = await t.open(
        user_id=user,
        instrument_id=iid,
        side="long",
        qty=1,
        leverage=1,
        acceptable_price=10**6,
        idempotency_key="c",
        district_id=4,
    )
    assert refused == Rejected("recovering")

    report = await rebuild(stores)
    assert report.wallets >= 2 and report.positions >= 2 and report.idempotency_keys >= 2
    assert await hot_state_present(stores)
    assert await stores.redis.hmget(k.wallet(user), "available", "locked") == before_wallet
    assert await stores.redis.hget(k.wallet(0), "available") == before_house
    assert int(await stores.redis.hget(k.instrument(iid), "skew") or 0) == 30 - 10
    assert await stores.redis.zscore(k.leaderboard_district(4), str(user)) is not None

    # the same request again is answered from the first trade, not traded twice
    again = await t.open(
        user_id=user,
        instrument_id=iid,
        side="long",
        qty=30,
        leverage=2,
        acceptable_price=10**6,
        idempotency_key="a",
        district_id=4,
    )
    assert isinstance(again, OpenResult) and again.replay and again.trade_id == opened.trade_id
    async with stores.pg.connection() as conn:  # the hot path writes a replay again: a no-op
        assert await persist_trade(conn, again.entry, stores.keys.prefix) is Outcome.PRESENT
    # new trades get new ids after PostgreSQL's, and positions survive for closing; the user's
    # used keys come back from PostgreSQL first
    refused = await t.open(user_id=user, instrument_id=iid, side="long", qty=1, leverage=1,
                           acceptable_price=10**6, idempotency_key="d", district_id=4)  # fmt: skip
    assert refused == Rejected("no_used_keys")
    await load_used_keys(stores, user)
    new = await t.open(
        user_id=user,
        instrument_id=iid,
        side="long",
        qty=1,
        leverage=1,
        acceptable_price=10**6,
        idempotency_key="d",
        district_id=4,
    )
    assert isinstance(new, OpenResult) and new.trade_id > short.trade_id
    closed = await t.close(
        user_id=user, position_id=opened.position_id, acceptable_price=1, idempotency_key="e", district_id=4
    )
    assert not isinstance(closed, Rejected)


async def test_only_one_rebuilds(stores: Stores) -> None:
    await make_instrument(stores)
    await wipe_redis(stores)
    a = LeaderLock(stores.scripts, stores.keys, "rebuild")
    b = LeaderLock(stores.scripts, stores.keys, "rebuild")
    assert await b.acquire()  # another flusher is rebuilding
    assert await ensure_hot_state(stores, a) is None
    assert not await hot_state_present(stores)
    await b.release()
    report = await ensure_hot_state(stores, a)
    assert report is not None and await hot_state_present(stores)
    assert await ensure_hot_state(stores, a) is None  # present: nothing to do


async def test_rebuild_keeps_each_index_timestamp(stores: Stores) -> None:
    """Defect 8: the rebuild stamped every index 'now', which defeated the staleness check."""
    iid = await make_instrument(stores)
    old_ms = int(time.time() * 1000) - 600_000
    async with stores.pg.connection() as conn:
        await conn.execute(
            "UPDATE instruments SET index_ts = to_timestamp(%s / 1000.0) WHERE id = %s", (old_ms, iid)
        )
    await wipe_redis(stores)
    await rebuild(stores)
    assert int(await stores.redis.hget(stores.keys.instrument(iid), "index_ts") or 0) == old_ms
    # so a trade with a 60 s staleness limit is refused until a fresh index arrives
    user = await make_trader(stores)
    strict = TradingScripts(stores.scripts, stores.keys, TradingConfig(max_index_age_ms=60_000))
    res = await strict.open(user_id=user, instrument_id=iid, side="long", qty=1, leverage=1,
                            acceptable_price=10**6, idempotency_key="stale")  # fmt: skip
    assert res == Rejected("stale_index")


async def test_the_rebuild_lock_is_renewed_while_a_long_rebuild_runs(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 8: a rebuild longer than the lock's TTL let a second rebuilder in."""
    await make_instrument(stores)
    await wipe_redis(stores)
    real = recovery.rebuild

    async def slow(s: Stores) -> recovery.RebuildReport:
        await asyncio.sleep(1.0)  # longer than three TTLs of the lock below
        return await real(s)

    monkeypatch.setattr(recovery, "rebuild", slow)
    lock = LeaderLock(stores.scripts, stores.keys, "rebuild", ttl_ms=300)
    other = LeaderLock(stores.scripts, stores.keys, "rebuild", ttl_ms=300)
    task = asyncio.create_task(recovery.ensure_hot_state(stores, lock))
    started = time.monotonic() + 2.0
    while await stores.redis.get(lock.key) != lock.token.encode():  # the rebuild took the lock
        assert time.monotonic() < started, "the rebuild never took its lock"
        await asyncio.sleep(0.01)
    stolen = False
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # the whole slow part: nobody else may take the lock
        stolen = stolen or await other.acquire()
        await asyncio.sleep(0.05)
    report = await task
    assert report is not None and not stolen
    assert await hot_state_present(stores)
