"""position_close.lua through its wrapper: whole and partial closes, idempotency, every rejection."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest

from ftl.persistence.trade_replies import CloseResult, OpenResult, Rejected
from ftl.trading import amm
from tests.trading.conftest import MAX_AGE_MS, NOW, World
from tests.trading.model import Instrument
from tests.trading.support import decode, put_instrument

OPEN: dict[str, Any] = {
    "user_id": 1, "instrument_id": 1, "side": "long", "qty": 100, "leverage": 2,
    "acceptable_price": 1010, "idempotency_key": "o1",
}  # fmt: skip
CLOSE: dict[str, Any] = {
    "user_id": 1, "position_id": 1, "instrument_id": 1, "acceptable_price": 1, "idempotency_key": "c1",
}  # fmt: skip


async def opened(world: World, **changes: Any) -> OpenResult:
    order = {**OPEN, **changes}
    got = await world.trading.open(now=NOW, **order)
    assert got == world.model.open(now=NOW, **order)
    assert isinstance(got, OpenResult)
    return got


async def close_both(world: World, **changes: Any) -> CloseResult | Rejected:
    order = {**CLOSE, **changes}
    got = await world.trading.close(now=NOW, **order)
    assert got == world.model.close(now=NOW, **order)
    return got


async def test_whole_close_at_constant_index_loses_only_the_fees(world: World) -> None:
    o = await opened(world)
    before = o.available + o.locked
    res = await close_both(world)
    assert isinstance(res, CloseResult)
    assert (res.kind, res.status, res.qty, res.remaining_qty) == ("close", "closed", 100, 0)
    # sold back from skew 100 at F = 1005 exactly: no PnL, only the close fee
    assert (res.price, res.notional, res.realised_pnl, res.fee) == (1005, 100_500, 0, 101)
    assert res.payout == o.margin - 101 and res.margin == o.margin
    assert res.available + res.locked == before - 101 and res.locked == 0
    assert res.skew == 0
    c, k = world.client, world.keys
    pos = decode(await c.hgetall(k.position(1)))
    assert (pos["status"], pos["qty"], pos["margin"], pos["closed_ts"]) == ("closed", "0", "0", str(NOW))
    assert decode(await c.hgetall(k.wallet(0)))["available"] == "202"
    entries = await c.xrange(k.outbox)
    assert [decode(e[1]) for e in entries] == world.model.outbox
    last = decode(entries[-1][1])
    assert (last["kind"], last["payout"], last["pos_status"], last["pos_closed_ts"]) == (
        "close", str(res.payout), "closed", str(NOW),
    )  # fmt: skip
    assert await c.zscore(k.leaderboard_overall, "1") == res.equity


async def test_partial_close_then_the_rest(world: World) -> None:
    await opened(world, qty=99, acceptable_price=2000)
    part = await close_both(world, qty=33)
    assert isinstance(part, CloseResult)
    assert (part.status, part.qty, part.remaining_qty) == ("open", 33, 66)
    pos = decode(await world.client.hgetall(world.keys.position(1)))
    assert pos["qty"] == "66" and pos["status"] == "open"
    rest = await close_both(world, idempotency_key="c2")
    assert isinstance(rest, CloseResult)
    assert (rest.status, rest.qty, rest.remaining_qty, rest.locked) == ("closed", 66, 0, 0)
    assert world.model.total_money() == 1_500_000


async def test_close_publishes_the_new_mark(world: World) -> None:
    await opened(world)
    pubsub = world.client.pubsub()
    await pubsub.subscribe(world.keys.price_channel(1))
    await pubsub.get_message(timeout=5)
    res = await close_both(world)
    assert isinstance(res, CloseResult)
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert msg is not None
    assert msgpack.unpackb(msg["data"]) == world.model.published[-1]
    assert msgpack.unpackb(msg["data"])["seq"] == 2
    await pubsub.aclose()


async def test_close_without_instrument_id_reads_it(world: World) -> None:
    await opened(world)
    got = await world.trading.close(now=NOW, **{k: v for k, v in CLOSE.items() if k != "instrument_id"})
    assert isinstance(got, CloseResult)
    missing = await world.trading.close(
        now=NOW, user_id=1, position_id=42, acceptable_price=1, idempotency_key="x"
    )
    assert missing == Rejected("not_found")


async def test_replay_and_conflict(world: World) -> None:
    await opened(world)
    first = await close_both(world, qty=10)
    assert isinstance(first, CloseResult)
    before = await world.snapshot()
    again = await close_both(world, qty=10)
    assert again == dataclasses.replace(first, replay=True)
    assert await close_both(world, qty=11) == Rejected("conflict")
    assert await close_both(world, idempotency_key="o1") == Rejected("conflict")  # the open's key
    assert await world.snapshot() == before


async def test_a_losing_close_pays_at_most_the_margin_and_never_below_zero(world: World) -> None:
    await opened(world, leverage=5)
    got = await world.trading.update_index(instrument_id=1, index_price=500, ts=NOW)
    assert got == world.model.update_index(instrument_id=1, index_price=500, ts=NOW)
    res = await close_both(world)
    assert isinstance(res, CloseResult)
    assert res.payout == 0 and res.realised_pnl < -res.margin
    assert res.available >= 0 and res.locked == 0
    assert world.model.total_money() == 1_500_000


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


async def _bad_index(world: World) -> None:
    await world.client.hset(world.keys.instrument(1), "index", 0)
    world.model.instruments[1].index = 0


async def _closed_position(world: World) -> None:
    assert isinstance(await close_both(world, idempotency_key="first"), CloseResult)


async def _no_wallet(world: World) -> None:
    await world.client.delete(world.keys.wallet(1))
    del world.model.wallets[1]


async def _nothing(world: World) -> None:
    return None


REJECTIONS: list[tuple[str, dict[str, Any], Any]] = [
    ("bad_user", {"user_id": 0}, _nothing),
    ("bad_qty", {"qty": -1}, _nothing),
    ("bad_qty", {"qty": 101}, _nothing),
    ("bad_qty", {"qty": 2**63}, _nothing),
    ("bad_price", {"acceptable_price": 0}, _nothing),
    ("not_found", {"position_id": 9}, _nothing),
    ("not_owner", {"user_id": 2}, _nothing),
    ("not_open", {}, _closed_position),
    ("wrong_instrument", {"instrument_id": 2}, _nothing),
    ("unknown_instrument", {}, _nothing),
    ("instrument_bounds", {}, _bad_index),
    ("halted", {}, _halt),
    ("instrument_closed", {}, _closed),
    ("stale_index", {}, _stale),
    ("no_wallet", {}, _no_wallet),
    ("district_mismatch", {"district_id": 3}, _nothing),
    ("slippage", {"acceptable_price": 1006}, _nothing),
]


@pytest.mark.parametrize(("code", "changes", "prepare"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
async def test_every_rejection_changes_no_key(
    world: World, code: str, changes: dict[str, Any], prepare: Any
) -> None:
    await opened(world)
    await prepare(world)
    if code == "unknown_instrument":
        await world.client.delete(world.keys.instrument(1))
        del world.model.instruments[1]
    before = await world.snapshot()
    assert await close_both(world, **changes) == Rejected(code)
    assert await world.snapshot() == before


async def test_short_close_buys_back_and_checks_a_ceiling(world: World) -> None:
    await opened(world, side="short", acceptable_price=1)
    assert await close_both(world, acceptable_price=994) == Rejected("slippage")
    res = await close_both(world, acceptable_price=995)  # F = 1000 * (1 - 50/10000) = 995
    assert isinstance(res, CloseResult)
    assert res.price == 995 and res.realised_pnl == 0
    assert amm.mark(1000, res.skew, 10_000) == res.mark


# ---- defect 7: a close is never refused for the skew cap ----

SMALL = 3  # index 10.00, depth 2000, cap 1000: the shorts below fill the cap with little money


async def small_market(world: World, skew: int = 0) -> None:
    ins = Instrument(id=SMALL, index=1_000, depth=2_000, cap=1_000, index_ts=NOW, skew=skew)
    await put_instrument(world.client, world.keys, ins)
    world.model.instruments[SMALL] = ins


async def shorts_at_the_cap(world: World, long_leverage: int = 1) -> OpenResult:
    """User 1 long 500, then user 2 short 1500: skew -1000 = -cap. The long is position 1."""
    await small_market(world)
    long = await opened(world, instrument_id=SMALL, qty=500, leverage=long_leverage, acceptable_price=10**6)
    short = await opened(world, user_id=2, district_id=7, instrument_id=SMALL, side="short", qty=1_500,
                         leverage=5, acceptable_price=1, idempotency_key="o2")  # fmt: skip
    assert (long.skew, short.skew) == (500, -1_000)
    return long


async def test_a_close_past_the_cap_fills(world: World) -> None:
    o = await shorts_at_the_cap(world)
    # opening a short (the direction the long's close trades in) is capped ...
    assert await opened_or_rejected(world, user_id=2, district_id=7, side="short", qty=1) == Rejected(
        "skew_cap"
    )
    # ... closing the long is not: it sells 500 from -1000 to -1500, past the cap
    before = o.available + o.locked
    res = await close_both(world, instrument_id=SMALL)
    assert isinstance(res, CloseResult)
    assert (res.status, res.qty, res.skew) == ("closed", 500, -1_500)
    # the plain linear AMM there: F = 1000 (4000 - 2000 - 500) / 4000 = 375, N = 187 500
    assert (res.price, res.notional, res.fee) == (375, 187_500, 188)
    assert res.realised_pnl == 187_500 - o.notional and res.payout == o.margin + res.realised_pnl - 188
    assert res.available + res.locked == before + res.realised_pnl - 188
    assert res.mark == amm.mark(1_000, -1_500, 2_000) == 250
    ins = decode(await world.client.hgetall(world.keys.instrument(SMALL)))
    assert (ins["skew"], ins["long"], ins["short"]) == ("-1500", "0", "1500")
    assert world.model.total_money() == 1_500_000
    # still capped for opens, both ways: a short goes further, a long of 1 stays past the cap
    assert await opened_or_rejected(world, user_id=2, district_id=7, side="short", qty=1) == Rejected(
        "skew_cap"
    )
    assert await opened_or_rejected(world, qty=1, idempotency_key="o4") == Rejected("skew_cap")
    # a long of 500 brings |skew| back to the cap: allowed
    back = await opened_or_rejected(world, qty=500, idempotency_key="o5")
    assert isinstance(back, OpenResult) and back.skew == -1_000


async def opened_or_rejected(world: World, **changes: Any) -> OpenResult | Rejected:
    order = {**OPEN, "instrument_id": SMALL, "acceptable_price": 10**6, "idempotency_key": "o3", **changes}
    if order["side"] == "short":
        order["acceptable_price"] = 1
    got = await world.trading.open(now=NOW, **order)
    assert got == world.model.open(now=NOW, **order)
    return got


async def test_a_partial_close_past_the_cap_fills(world: World) -> None:
    await shorts_at_the_cap(world)
    part = await close_both(world, instrument_id=SMALL, qty=100)
    assert isinstance(part, CloseResult) and (part.remaining_qty, part.skew) == (400, -1_100)
    rest = await close_both(world, instrument_id=SMALL, idempotency_key="c2")
    assert isinstance(rest, CloseResult) and (rest.status, rest.skew) == ("closed", -1_500)


async def test_the_shorts_still_close_after_the_long_left(world: World) -> None:
    await shorts_at_the_cap(world)
    assert isinstance(await close_both(world, instrument_id=SMALL), CloseResult)
    res = await close_both(world, user_id=2, district_id=7, position_id=2, instrument_id=SMALL,
                           acceptable_price=10**6, idempotency_key="c2")  # fmt: skip
    assert isinstance(res, CloseResult) and res.skew == 0 and res.locked == 0


async def put_skew(world: World, skew: int) -> None:
    """Force an extreme skew (as if many other positions had closed)."""
    await world.client.hset(world.keys.instrument(SMALL), "skew", skew)
    world.model.instruments[SMALL].skew = skew


@pytest.mark.parametrize(
    ("skew", "price", "notional"),
    [
        # the linear numerator 1000 (2S + 2s + q) = 1000 (4000 - 3800 - 500) < 0 (it was a negative
        # notional): the mark is flat at 1 cent below lo = -2000 + ceil(2000/1000) = -1998, so
        # N = (1000 * 98 * (4000 - 1998 - 1900) + 1000 * 402 * 4) / 4000 = 2901
        (-1_900, 5, 2_901),
        (-1_998, 1, 500),  # the whole sell on the 1-cent floor of the mark
        (-2_000, 1, 500),  # |skew| = depth: no longer instrument_bounds
        (-250_000, 1, 500),  # far past the depth
        (-(10**15), 1, 500),  # the largest skew a close accepts
    ],
)
async def test_a_sell_at_extreme_skew_fills_at_a_cent_or_more(
    world: World, skew: int, price: int, notional: int
) -> None:
    await small_market(world)
    await opened(world, instrument_id=SMALL, qty=500, acceptable_price=10**6)
    await put_skew(world, skew)
    assert 1_000 * (2 * 2_000 + 2 * skew - 500) <= 0  # the old price numerator
    res = await close_both(world, instrument_id=SMALL)  # acceptable 1 cent: always met
    assert isinstance(res, CloseResult)
    assert (res.price, res.notional, res.skew) == (price, notional, skew - 500)
    assert res.notional >= res.qty and res.payout >= 0 and res.available >= 0
    assert res.mark == 1  # published in PRICE_UPDATE: at least 1 cent
    assert world.model.published[-1]["price"] == 1
    assert decode(await world.client.hgetall(world.keys.instrument(SMALL)))["skew"] == str(skew - 500)
    assert world.model.total_money() == 1_500_000


@pytest.mark.parametrize("skew", [2_000, 3_000, 10**15])
async def test_a_buy_at_extreme_skew_pays_at_most_twice_the_index(world: World, skew: int) -> None:
    await small_market(world)
    await opened(world, instrument_id=SMALL, side="short", qty=100, acceptable_price=1)
    await put_skew(world, skew)
    res = await close_both(world, instrument_id=SMALL, acceptable_price=10**9)
    assert isinstance(res, CloseResult)
    assert (res.price, res.notional, res.skew, res.mark) == (2_000, 200_000, skew + 100, 2_000)


async def test_a_buy_at_extreme_skew_checks_its_ceiling(world: World) -> None:
    await small_market(world)
    await opened(world, instrument_id=SMALL, side="short", qty=100, acceptable_price=1)
    await put_skew(world, 5_000)
    before = await world.snapshot()
    assert await close_both(world, instrument_id=SMALL, acceptable_price=1_999) == Rejected("slippage")
    assert await world.snapshot() == before
    assert isinstance(await close_both(world, instrument_id=SMALL, acceptable_price=2_000), CloseResult)


async def test_opens_keep_their_bounds_at_extreme_skew(world: World) -> None:
    await small_market(world)
    await opened(world, instrument_id=SMALL, qty=500, acceptable_price=10**6)
    await put_skew(world, -2_000)
    before = await world.snapshot()
    assert await opened_or_rejected(world, qty=1_500, idempotency_key="o9") == Rejected("instrument_bounds")
    assert await world.snapshot() == before


async def test_a_skew_beyond_any_open_interest_is_a_broken_hash(world: World) -> None:
    await small_market(world)
    await opened(world, instrument_id=SMALL, qty=500, acceptable_price=10**6)
    for broken in (-(10**15) - 1, 10**15 + 1):
        await put_skew(world, broken)
        before = await world.snapshot()
        assert await close_both(world, instrument_id=SMALL) == Rejected("instrument_bounds")
        assert await world.snapshot() == before
    await world.client.hset(world.keys.instrument(SMALL), "skew", "12.5")  # not an integer
    before = await world.snapshot()
    got = await world.trading.close(now=NOW, **{**CLOSE, "instrument_id": SMALL})
    assert got == Rejected("instrument_bounds")
    assert await world.snapshot() == before
