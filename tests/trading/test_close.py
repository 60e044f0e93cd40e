"""position_close.lua through its wrapper: whole and partial closes, idempotency, every rejection."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest

from ftl.trading import amm
from ftl.trading.results import CloseResult, OpenResult, Rejected
from tests.trading.conftest import MAX_AGE_MS, NOW, World
from tests.trading.support import decode

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


async def _cap_squeeze(world: World) -> None:
    # a short then a long: skew back at 100, but closing the long 2000 would take it to -1900
    for key, side, qty in (("s", "short", 2_000), ("l", "long", 2_000)):
        await opened(world, side=side, qty=qty, leverage=5, acceptable_price=1 if side == "short" else 10**6,
                     idempotency_key=key)  # fmt: skip
    await world.client.hset(world.keys.instrument(1), "cap", 1_800)
    world.model.instruments[1].cap = 1_800


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
    ("skew_cap", {"position_id": 3, "acceptable_price": 1}, _cap_squeeze),
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
