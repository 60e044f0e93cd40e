"""position_liquidate.lua and index_update.lua through their wrappers: effects and every rejection."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ftl.persistence.trade_replies import CloseResult, IndexResult, OpenResult, Rejected
from ftl.trading import amm
from tests.trading.conftest import MAX_AGE_MS, NOW, World
from tests.trading.model import Instrument
from tests.trading.support import decode, put_instrument

OPEN: dict[str, Any] = {
    "user_id": 1, "instrument_id": 1, "side": "long", "qty": 1_000, "leverage": 5,
    "acceptable_price": 2_000, "idempotency_key": "o1",
}  # fmt: skip
LIQ: dict[str, Any] = {"position_id": 1, "user_id": 1, "instrument_id": 1}


async def opened(world: World, **changes: Any) -> OpenResult:
    order = {**OPEN, **changes}
    got = await world.trading.open(now=NOW, **order)
    assert got == world.model.open(now=NOW, **order)
    assert isinstance(got, OpenResult)
    return got


async def index_both(world: World, **args: Any) -> IndexResult | Rejected:
    got = await world.trading.update_index(**args)
    assert got == world.model.update_index(**args)
    return got


async def liquidate_both(world: World, **changes: Any) -> CloseResult | Rejected:
    args = {**LIQ, **changes}
    got = await world.trading.liquidate(now=NOW, **args)
    assert got == world.model.liquidate(now=NOW, **args)
    return got


async def test_liquidation_closes_an_underwater_position(world: World) -> None:
    o = await opened(world)
    assert await liquidate_both(world) == Rejected("not_liquidatable")
    # a long at 5x: margin ~20 %; a fall of ~17 % puts equity below 5 % of the value
    p = amm.liquidation_price("long", 1_000, o.notional, o.margin, 500)
    assert p is not None
    new_index = p * 10_000 // (10_000 + 1_000) - 1  # the mark at skew 1000 is index * 1.1
    assert isinstance(await index_both(world, instrument_id=1, index_price=new_index, ts=NOW), IndexResult)
    res = await liquidate_both(world)
    assert isinstance(res, CloseResult)
    assert (res.kind, res.status, res.qty, res.remaining_qty, res.skew) == (
        "liquidation",
        "liquidated",
        1_000,
        0,
        0,
    )
    assert res.locked == 0 and res.available >= 0
    c, k = world.client, world.keys
    pos = decode(await c.hgetall(k.position(1)))
    assert (pos["status"], pos["qty"], pos["margin"]) == ("liquidated", "0", "0")
    entries = [decode(e[1]) for e in await c.xrange(k.outbox)]
    assert entries == world.model.outbox
    assert entries[-1]["kind"] == "liquidation" and entries[-1]["idempotency_key"] == ""
    assert world.model.total_money() == 1_500_000
    before = await world.snapshot()
    assert await liquidate_both(world) == Rejected("not_open")
    assert await world.snapshot() == before


async def test_liquidate_position_reads_owner_instrument_and_district(world: World) -> None:
    o = await opened(world, user_id=2, instrument_id=2, qty=500, acceptable_price=10**6, district_id=7)
    assert await world.trading.liquidate_position(o.position_id, now=NOW) == Rejected("not_liquidatable")
    assert await world.trading.liquidate_position(99, now=NOW) == Rejected("not_found")
    await index_both(world, instrument_id=2, index_price=1_000, ts=NOW)
    res = await world.trading.liquidate_position(o.position_id, now=NOW)
    assert res == world.model.liquidate(position_id=o.position_id, user_id=2, instrument_id=2, now=NOW,
                                        district_id=7)  # fmt: skip
    assert isinstance(res, CloseResult) and res.kind == "liquidation"
    assert await world.client.zscore(world.keys.leaderboard_district(7), "2") == res.equity


async def _halt(world: World) -> None:
    await world.client.hset(world.keys.instrument(1), "status", "halted")
    world.model.instruments[1].status = "halted"


async def _closed(world: World) -> None:
    await world.client.hset(world.keys.instrument(1), "status", "closed")
    world.model.instruments[1].status = "closed"


async def _stale(world: World) -> None:
    ts = NOW - MAX_AGE_MS - 1
    await world.client.hset(world.keys.instrument(1), "index_ts", ts)
    world.model.instruments[1].index_ts = ts


async def _bad_depth(world: World) -> None:
    await world.client.hset(world.keys.instrument(1), "depth", 0)
    world.model.instruments[1].depth = 0


async def _crash(world: World) -> None:
    await index_both(world, instrument_id=1, index_price=100, ts=NOW)


async def _no_wallet(world: World) -> None:
    await _crash(world)
    await world.client.delete(world.keys.wallet(1))
    del world.model.wallets[1]


async def _nothing(world: World) -> None:
    return None


REJECTIONS: list[tuple[str, dict[str, Any], Any]] = [
    ("bad_user", {"user_id": 0}, _nothing),
    ("bad_args", {"position_id": 0}, _nothing),
    ("not_found", {"position_id": 5}, _nothing),
    ("not_owner", {"user_id": 2}, _nothing),
    ("wrong_instrument", {"instrument_id": 2}, _nothing),
    ("unknown_instrument", {}, _nothing),
    ("instrument_bounds", {}, _bad_depth),
    ("halted", {}, _halt),
    ("instrument_closed", {}, _closed),
    ("stale_index", {}, _stale),
    ("no_wallet", {}, _no_wallet),
    ("district_mismatch", {"district_id": 7}, _crash),
    ("not_liquidatable", {}, _nothing),
]


@pytest.mark.parametrize(("code", "changes", "prepare"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
async def test_every_liquidation_rejection_changes_no_key(
    world: World, code: str, changes: dict[str, Any], prepare: Any
) -> None:
    await opened(world)
    await prepare(world)
    if code == "unknown_instrument":
        await world.client.delete(world.keys.instrument(1))
        del world.model.instruments[1]
    before = await world.snapshot()
    assert await liquidate_both(world, **changes) == Rejected(code)
    assert await world.snapshot() == before


async def test_index_update_moves_no_money_and_publishes(world: World) -> None:
    await opened(world, qty=100)
    c, k = world.client, world.keys
    wallets = (await c.hgetall(k.wallet(1)), await c.hgetall(k.wallet(0)))
    pubsub = c.pubsub()
    await pubsub.subscribe(k.price_channel(1))
    await pubsub.get_message(timeout=5)
    res = await index_both(world, instrument_id=1, index_price=1_200, ts=NOW + 2_000)
    assert res == IndexResult(instrument_id=1, index=1_200, index_ts=NOW + 2_000, status="open", skew=100,
                              mark=1_212, pseq=2)  # fmt: skip
    assert (await c.hgetall(k.wallet(1)), await c.hgetall(k.wallet(0))) == wallets
    ins = decode(await c.hgetall(k.instrument(1)))
    assert (ins["index"], ins["index_ts"], ins["pseq"]) == ("1200", str(NOW + 2_000), "2")
    assert b"i:1" in await c.smembers(k.dirty)
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert msg is not None and len(msg["data"]) <= 93
    assert msgpack.unpackb(msg["data"]) == {
        "type": "PRICE_UPDATE", "id": 1, "price": 1_212, "index": 1_200, "skew": 100, "seq": 2,
        "ts": NOW + 2_000,
    }  # fmt: skip
    await pubsub.aclose()


async def test_halt_and_reopen_keep_the_index(world: World) -> None:
    res = await index_both(world, instrument_id=1, index_price=None, status="halted")
    assert isinstance(res, IndexResult) and (res.status, res.index, res.index_ts) == ("halted", 1000, NOW)
    assert await world.trading.open(now=NOW, **OPEN) == Rejected("halted")
    res = await index_both(world, instrument_id=1, index_price=1_100, ts=NOW + 1, status="open")
    assert isinstance(res, IndexResult) and (res.status, res.index) == ("open", 1_100)


INDEX_REJECTIONS: list[tuple[str, dict[str, Any]]] = [
    ("bad_args", {"instrument_id": 0, "index_price": 10, "ts": NOW}),
    ("bad_args", {"instrument_id": 1, "index_price": None}),
    ("bad_price", {"instrument_id": 1, "index_price": 0, "ts": NOW}),
    ("bad_price", {"instrument_id": 1, "index_price": amm.MAX_PRICE + 1, "ts": NOW}),
    ("bad_status", {"instrument_id": 1, "index_price": None, "status": "paused"}),
    ("unknown_instrument", {"instrument_id": 9, "index_price": 10, "ts": NOW}),
    ("stale_tick", {"instrument_id": 1, "index_price": 10, "ts": NOW - 1}),
]


@pytest.mark.parametrize(("code", "args"), INDEX_REJECTIONS, ids=[r[0] for r in INDEX_REJECTIONS])
async def test_every_index_rejection_changes_no_key(world: World, code: str, args: dict[str, Any]) -> None:
    before = await world.snapshot()
    assert await index_both(world, **args) == Rejected(code)
    assert await world.snapshot() == before


async def test_index_update_refuses_a_broken_instrument(world: World) -> None:
    await world.client.hset(world.keys.instrument(1), "depth", 0)
    before = await world.snapshot()
    got = await world.trading.update_index(instrument_id=1, index_price=10, ts=NOW)
    assert got == Rejected("instrument_bounds")
    assert await world.snapshot() == before


# ---- defect 7: a liquidation is never refused for the skew cap ----

SMALL = 3  # index 10.00, depth 2000, cap 1000


async def small_market(world: World) -> None:
    ins = Instrument(id=SMALL, index=1_000, depth=2_000, cap=1_000, index_ts=NOW)
    await put_instrument(world.client, world.keys, ins)
    world.model.instruments[SMALL] = ins


async def test_a_liquidation_past_the_cap_fills(world: World) -> None:
    await small_market(world)
    await opened(world, instrument_id=SMALL, qty=500)  # long 500 at 5x: skew 500
    short = await opened(world, user_id=2, district_id=7, instrument_id=SMALL, side="short", qty=1_500,
                         acceptable_price=1, idempotency_key="o2")  # fmt: skip
    assert short.skew == -1_000  # at -cap: the long's mark fell from 1125 to 500, far underwater
    args = {"position_id": 1, "user_id": 1, "instrument_id": SMALL}
    res = await liquidate_both(world, **args)
    assert isinstance(res, CloseResult)
    assert (res.kind, res.status, res.qty, res.skew) == ("liquidation", "liquidated", 500, -1_500)
    assert (res.price, res.notional) == (375, 187_500)  # linear: 1000 (4000 - 2000 - 500) / 4000
    assert res.payout == 0 and res.locked == 0 and res.available >= 0
    assert res.mark == 250
    assert world.model.total_money() == 1_500_000
    # opens the same way (short) are still capped
    order = {"user_id": 2, "district_id": 7, "instrument_id": SMALL, "side": "short", "qty": 1,
             "leverage": 1, "acceptable_price": 1, "idempotency_key": "o3"}  # fmt: skip
    assert (
        await world.trading.open(now=NOW, **order)
        == world.model.open(now=NOW, **order)
        == Rejected("skew_cap")
    )


@pytest.mark.parametrize("skew", [-1_900, -2_000, -100_000])
async def test_a_liquidation_at_extreme_skew_fills_at_a_cent_or_more(world: World, skew: int) -> None:
    await small_market(world)
    await opened(world, instrument_id=SMALL, qty=500)
    await world.client.hset(world.keys.instrument(SMALL), "skew", skew)  # as if others had closed
    world.model.instruments[SMALL].skew = skew
    assert 1_000 * (2 * 2_000 + 2 * skew - 500) <= 0  # the old price numerator
    res = await liquidate_both(world, position_id=1, user_id=1, instrument_id=SMALL)
    assert isinstance(res, CloseResult) and res.kind == "liquidation"
    assert res.price >= 1 and res.notional >= 500 and res.payout >= 0 and res.skew == skew - 500
    assert res.mark == 1 and world.model.published[-1]["price"] == 1
    assert world.model.total_money() == 1_500_000


async def test_an_index_update_at_extreme_skew_still_moves_the_index(world: World) -> None:
    await small_market(world)
    for skew, mark in ((-2_000, 1), (-(10**15), 1), (2_500, 2_400), (10**15, 2_400)):
        await world.client.hset(world.keys.instrument(SMALL), "skew", skew)
        world.model.instruments[SMALL].skew = skew
        res = await index_both(world, instrument_id=SMALL, index_price=1_200, ts=NOW)
        assert isinstance(res, IndexResult) and (res.skew, res.mark) == (skew, mark)
        halted = await index_both(world, instrument_id=SMALL, index_price=None, status="halted")
        assert isinstance(halted, IndexResult) and halted.mark == mark
        assert isinstance(
            await index_both(world, instrument_id=SMALL, index_price=None, status="open"), IndexResult
        )
    await world.client.hset(world.keys.instrument(SMALL), "skew", 10**15 + 1)
    world.model.instruments[SMALL].skew = 10**15 + 1
    assert await index_both(world, instrument_id=SMALL, index_price=1_200, ts=NOW) == Rejected(
        "instrument_bounds"
    )
