"""position_open.lua through its wrapper: the fill, every effect, idempotency and every rejection."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest

from ftl.persistence.trade_replies import OpenResult, Rejected
from ftl.persistence.trade_scripts import IDEMPOTENCY_TTL_MS
from ftl.trading import amm
from tests.trading.conftest import MAX_AGE_MS, NOW, World
from tests.trading.support import decode

ORDER: dict[str, Any] = {
    "user_id": 1, "instrument_id": 1, "side": "long", "qty": 100, "leverage": 2,
    "acceptable_price": 1010, "idempotency_key": "k1",
}  # fmt: skip


async def open_both(world: World, **changes: Any) -> OpenResult | Rejected:
    """Open on Redis and on the model; assert both answer the same."""
    order = {**ORDER, **changes}
    got = await world.trading.open(now=NOW, **order)
    want = world.model.open(now=NOW, **order)
    assert got == want
    return got


async def test_open_fills_at_the_amm_price_and_writes_every_key(world: World) -> None:
    k, c = world.keys, world.client
    pubsub = c.pubsub()
    await pubsub.subscribe(k.price_channel(1))
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]

    res = await open_both(world)
    assert isinstance(res, OpenResult)
    q = amm.quote(1000, 0, 10_000, "long", 100, 2, 10)
    assert (res.price, res.notional, res.fee, res.margin) == (1005, 100_500, 101, 50_250)
    assert q.cost == res.margin + res.fee == 50_351
    assert (res.trade_id, res.position_id, res.replay) == (1, 1, False)
    assert (res.available, res.locked, res.equity) == (1_000_000 - 50_351, 50_250, 1_000_000 - 101)
    assert (res.skew, res.mark, res.index) == (100, 1010, 1000)

    wallet = decode(await c.hgetall(k.wallet(1)))
    assert wallet == {
        "available": "949649",
        "locked": "50250",
        "equity": "999899",
        "seq": "1",
        "district": "",
    }
    assert decode(await c.hgetall(k.wallet(0))) == {"available": "101", "locked": "0", "seq": "1"}
    ins = decode(await c.hgetall(k.instrument(1)))
    assert (ins["skew"], ins["long"], ins["short"], ins["pseq"]) == ("100", "100", "0", "1")
    pos = decode(await c.hgetall(k.position(1)))
    assert pos == {
        "user": "1", "instrument": "1", "side": "long", "qty": "100", "entry_price": "1005",
        "entry_notional": "100500", "margin": "50250", "leverage": "2", "status": "open",
        "realised_pnl": "0", "seq": "1", "opened_ts": str(NOW),
    }  # fmt: skip
    assert decode(await c.hgetall(k.seq)) == {"trade": "1", "position": "1"}

    entries = await c.xrange(k.outbox)
    assert len(entries) == 1
    entry = decode(entries[0][1])
    assert entry == world.model.outbox[0] == res.entry  # the reply carries the outbox entry
    assert entry["kind"] == "open" and entry["idempotency_key"] == "k1" and len(entry["request_hash"]) == 40
    assert entry["pos_closed_ts"] == "" and entry["house_available"] == "101"

    assert {m.decode() for m in await c.smembers(k.dirty)} == {"w:1", "w:0", "p:1", "i:1"}
    assert await c.zscore(k.leaderboard_overall, "1") == 999_899
    assert await c.exists(k.leaderboard_district(7)) == 0

    idem = decode({f: v for f, v in (await c.hgetall(k.idempotency(1, "k1"))).items() if f != b"reply"})
    assert idem == {"hash": entry["request_hash"], "trade": "1"}
    assert IDEMPOTENCY_TTL_MS - 60_000 < await c.pttl(k.idempotency(1, "k1")) <= IDEMPOTENCY_TTL_MS

    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert msg is not None
    assert len(msg["data"]) <= 93  # 95 bytes on the wire with the 2-byte WebSocket header
    payload = msgpack.unpackb(msg["data"])
    assert payload == {
        "type": "PRICE_UPDATE",
        "id": 1,
        "price": 1010,
        "index": 1000,
        "skew": 100,
        "seq": 1,
        "ts": NOW,
    }
    assert payload == world.model.published[0]
    await pubsub.aclose()


async def test_open_in_a_district_updates_its_board(world: World) -> None:
    res = await open_both(world, user_id=2, instrument_id=2, side="short", acceptable_price=1, district_id=7)
    assert isinstance(res, OpenResult)
    assert res.skew == -100
    c, k = world.client, world.keys
    assert await c.zscore(k.leaderboard_district(7), "2") == res.equity
    assert await c.zscore(k.leaderboard_overall, "2") == res.equity
    assert res.fee == amm.fee(res.notional, 30)  # the instrument's own fee_bps


async def test_same_key_same_body_replays_the_first_reply(world: World) -> None:
    first = await open_both(world)
    before = await world.snapshot()
    again = await open_both(world)
    assert isinstance(first, OpenResult) and isinstance(again, OpenResult)
    assert again.replay is True
    assert again == dataclasses.replace(first, replay=True)
    assert again.trade_id == first.trade_id and again.available == first.available
    assert again.entry == first.entry and again.entry["trade_id"] == "1"  # to persist again if needed
    assert await world.snapshot() == before
    assert await world.client.xlen(world.keys.outbox) == 1


async def test_same_key_other_body_is_a_conflict(world: World) -> None:
    await open_both(world)
    before = await world.snapshot()
    assert await open_both(world, qty=101) == Rejected("conflict")
    assert await world.snapshot() == before


async def test_after_a_rejection_the_same_key_can_succeed(world: World) -> None:
    assert await open_both(world, acceptable_price=1000) == Rejected("slippage")
    res = await open_both(world)
    assert isinstance(res, OpenResult) and not res.replay


async def _halt(world: World) -> None:
    await world.client.hset(world.keys.instrument(1), "status", "halted")
    world.model.instruments[1].status = "halted"


async def _close_instrument(world: World) -> None:
    await world.client.hset(world.keys.instrument(1), "status", "closed")
    world.model.instruments[1].status = "closed"


async def _stale(world: World) -> None:
    ts = NOW - MAX_AGE_MS - 1
    await world.client.hset(world.keys.instrument(1), "index_ts", ts)
    world.model.instruments[1].index_ts = ts


async def _bad_depth(world: World) -> None:
    await world.client.hset(world.keys.instrument(1), "depth", amm.MAX_DEPTH + 1)
    world.model.instruments[1].depth = amm.MAX_DEPTH + 1


async def _poor(world: World) -> None:
    await world.client.hset(world.keys.wallet(1), "available", 50_350)  # one cent short
    world.model.wallets[1].available = 50_350


async def _nothing(world: World) -> None:
    return None


REJECTIONS: list[tuple[str, dict[str, Any], Any]] = [
    ("bad_user", {"user_id": 0}, _nothing),
    ("bad_side", {"side": "up"}, _nothing),
    ("bad_qty", {"qty": 0}, _nothing),
    ("bad_qty", {"qty": -5}, _nothing),
    ("bad_qty", {"qty": amm.MAX_QTY + 1}, _nothing),
    ("bad_qty", {"qty": 2**63}, _nothing),
    ("bad_leverage", {"leverage": 0}, _nothing),
    ("bad_leverage", {"leverage": 50}, _nothing),
    ("bad_price", {"acceptable_price": 0}, _nothing),
    ("bad_price", {"acceptable_price": amm.MAX_ACCEPTABLE + 1}, _nothing),
    ("unknown_instrument", {"instrument_id": 99}, _nothing),
    ("instrument_bounds", {}, _bad_depth),
    ("halted", {}, _halt),
    ("instrument_closed", {}, _close_instrument),
    ("stale_index", {}, _stale),
    ("no_wallet", {"user_id": 3}, _nothing),
    ("district_mismatch", {"district_id": 7}, _nothing),
    ("district_mismatch", {"user_id": 2}, _nothing),
    ("skew_cap", {"qty": 5_001, "acceptable_price": 10_000}, _nothing),
    ("skew_cap", {"side": "short", "qty": 5_001, "acceptable_price": 1}, _nothing),
    ("slippage", {"acceptable_price": 1004}, _nothing),
    ("slippage", {"side": "short", "acceptable_price": 996}, _nothing),
    ("insufficient_funds", {}, _poor),
]


@pytest.mark.parametrize(("code", "changes", "prepare"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
async def test_every_rejection_changes_no_key(
    world: World, code: str, changes: dict[str, Any], prepare: Any
) -> None:
    await prepare(world)
    before = await world.snapshot()
    assert await open_both(world, **changes) == Rejected(code)
    assert await world.snapshot() == before


async def test_bad_args_now(world: World) -> None:
    before = await world.snapshot()
    assert await world.trading.open(now=-1, **ORDER) == Rejected("bad_args")
    assert await world.snapshot() == before


async def test_fill_within_acceptable_at_the_edge(world: World) -> None:
    # F(100) = 1005 exactly: acceptable 1005 passes for a long, 1004 does not.
    res = await open_both(world, acceptable_price=1005)
    assert isinstance(res, OpenResult) and res.price == 1005
    short = await open_both(world, side="short", acceptable_price=1005, idempotency_key="k2")
    assert isinstance(short, OpenResult) and short.price >= 1005


async def test_every_trade_script_refuses_while_redis_is_being_rebuilt(world: World) -> None:
    opened = await world.trading.open(
        user_id=1,
        instrument_id=1,
        side="long",
        qty=10,
        leverage=2,
        acceptable_price=10**6,
        idempotency_key="before-loss",
    )
    assert isinstance(opened, OpenResult)
    await world.client.delete(world.keys.boot_marker)
    before = await world.snapshot()
    assert await world.trading.open(
        user_id=1,
        instrument_id=1,
        side="long",
        qty=10,
        leverage=2,
        acceptable_price=10**6,
        idempotency_key="during-rebuild",
    ) == Rejected("recovering")
    assert await world.trading.close(
        user_id=1,
        position_id=opened.position_id,
        acceptable_price=1,
        idempotency_key="close-during-rebuild",
        instrument_id=1,
    ) == Rejected("recovering")
    assert await world.trading.liquidate(
        position_id=opened.position_id, user_id=1, instrument_id=1
    ) == Rejected("recovering")
    assert await world.snapshot() == before
