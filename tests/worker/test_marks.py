"""Mark-to-market, liquidation sweep and snapshots against real Redis and PostgreSQL."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import IndexResult, OpenResult
from ftl.trading import amm
from ftl.trading.leaderboard import EXACT_EQUITY, TIE_SLOTS, TieBreak, equity_of, take_snapshot
from ftl.worker.flusher import Flusher
from ftl.worker.marks import Marks
from tests.persistence.support import make_instrument, make_trader, trading

T0 = 1_781_000_000_000  # ms, mid June 2026


def _int(v: Any) -> int:
    return int(v.decode() if isinstance(v, bytes) else v)


async def _open(stores: Stores, user: int, iid: int, side: str, qty: int, leverage: int) -> OpenResult:
    res = await trading(stores).open(
        user_id=user,
        instrument_id=iid,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        leverage=leverage,
        acceptable_price=10**6 if side == "long" else 1,
        idempotency_key=secrets.token_hex(6),
    )
    assert isinstance(res, OpenResult), res
    return res


async def _index(stores: Stores, iid: int, price: int) -> None:
    assert isinstance(await trading(stores).update_index(instrument_id=iid, index_price=price), IndexResult)


async def _mark(stores: Stores, iid: int) -> int:
    index, skew, depth = await stores.redis.hmget(stores.keys.instrument(iid), "index", "skew", "depth")
    return amm.mark(_int(index), _int(skew), _int(depth))


async def _position(stores: Stores, pid: int) -> dict[str, str]:
    raw = await stores.redis.hgetall(stores.keys.position(pid))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def _liquidatable(stores: Stores, pid: int, mark: int, mm_bps: int = 500) -> bool:
    p = await _position(stores, pid)
    if p["status"] != "open":
        return False
    side: amm.Side = "long" if p["side"] == "long" else "short"
    return amm.is_liquidatable(side, int(p["qty"]), int(p["entry_notional"]), int(p["margin"]), mark, mm_bps)


async def _equity(stores: Stores, user: int) -> int:
    """available + locked + unrealised PnL at mark, from Redis."""
    available, locked = await stores.redis.hmget(stores.keys.wallet(user), "available", "locked")
    total = _int(available) + _int(locked)
    async for key in stores.redis.scan_iter(match=f"{stores.keys.prefix}position:*"):
        p = {k.decode(): v.decode() for k, v in (await stores.redis.hgetall(key)).items()}
        if p.get("user") == str(user) and p.get("status") == "open":
            side: amm.Side = "long" if p["side"] == "long" else "short"
            mark = await _mark(stores, int(p["instrument"]))
            total += amm.unrealised_pnl(side, int(p["qty"]), int(p["entry_notional"]), mark)
    return total


async def _score(stores: Stores, user: int) -> float | None:
    score = await stores.redis.zscore(stores.keys.leaderboard_overall, str(user))
    return None if score is None else float(score)


def test_tie_break_scores_order_by_equity_then_earlier_reach() -> None:
    tie = TieBreak()
    early, late = tie.score(1_000_000, T0), tie.score(1_000_000, T0 + 10_000)
    assert early > late > 1_000_000 and equity_of(early) == equity_of(late) == 1_000_000
    assert tie.score(1_000_001, T0 + 10**9) > early  # more equity always wins
    assert tie.score(1_000_000, T0 + 1) == early  # same slot: same score
    assert equity_of(tie.score(-5, T0)) == -5
    big = EXACT_EQUITY + 3
    assert tie.score(big, T0) == float(big)  # beyond 2^31 cents the tie-break is dropped, exactly
    assert equity_of(tie.score(EXACT_EQUITY - 1, tie.epoch_ms)) == EXACT_EQUITY - 1
    assert tie.slot(0) == 0 and tie.slot(10**15) == TIE_SLOTS - 1


async def test_mark_to_market_moves_equity_with_the_index(stores: Stores) -> None:
    holder, other = await make_trader(stores), await make_trader(stores)
    iid, iid2 = await make_instrument(stores, index=1000), await make_instrument(stores, index=2000)
    await _open(stores, holder, iid, "long", 200, 2)
    await _open(stores, other, iid2, "short", 50, 3)
    flusher = Flusher(stores, marks=Marks(stores, clock=lambda: T0))
    await flusher.flush_once()  # drains the outbox and indexes both positions
    marks = flusher.marks
    await marks.tick(now=T0)
    before = await _score(stores, holder)
    assert before is not None and equity_of(before) == await _equity(stores, holder)
    cash = sum(_int(x) for x in await stores.redis.hmget(stores.keys.wallet(holder), "available", "locked"))
    assert equity_of(before) != cash  # the unrealised PnL at mark counts
    other_before = await _score(stores, other)
    assert other_before is not None and equity_of(other_before) == await _equity(stores, other)

    await _index(stores, iid, 1100)
    assert await marks.mark_to_market(now=T0 + 5_000) == 1  # only the holder of the moved one
    after = await _score(stores, holder)
    assert after is not None and equity_of(after) == await _equity(stores, holder)
    # +100 on the index moves the mark by 100 * (S + s) / S: 200 units gain about 20,000 cents
    assert 19_900 <= equity_of(after) - equity_of(before) <= 20_100
    assert await _score(stores, other) == other_before
    assert await marks.mark_to_market(now=T0 + 6_000) == 0  # nothing moved since


async def test_unchanged_equity_keeps_its_earlier_reach(stores: Stores) -> None:
    a, b = await make_trader(stores), await make_trader(stores)
    marks = Marks(stores)
    assert await marks.remark([a], now=T0) == 1
    assert await marks.remark([b], now=T0 + 10_000) == 1
    assert await marks.remark([a, b], now=T0 + 20_000) == 0  # same equity: scores kept
    board = await stores.redis.zrevrange(stores.keys.leaderboard_overall, 0, -1)
    assert board == [str(a).encode(), str(b).encode()]


async def test_sweep_liquidates_exactly_the_positions_past_their_price(stores: Stores) -> None:
    users = [await make_trader(stores) for _ in range(6)]
    iid = await make_instrument(stores, index=1000)
    orders = [("long", 100, 5), ("long", 100, 2), ("short", 100, 5), ("long", 100, 1), ("short", 50, 2),
              ("long", 300, 5)]  # fmt: skip
    opened = [await _open(stores, u, iid, *o) for u, o in zip(users, orders, strict=True)]
    pids = [o.position_id for o in opened]
    flusher = Flusher(stores, marks=Marks(stores))
    await flusher.flush_once()
    marks = flusher.marks
    await marks.tick()
    assert (await marks.sweep()).instruments == 0  # nothing moved since the last sweep

    async def shock(price: int) -> set[int]:
        await _index(stores, iid, price)
        mark = await _mark(stores, iid)
        expected = {pid for pid in pids if await _liquidatable(stores, pid, mark)}
        stats = await marks.sweep()
        assert stats.instruments == 1 and stats.blocked == 0
        assert set(stats.liquidated) == expected
        after = await _mark(stores, iid)  # liquidations move the skew: none is left behind
        assert not [pid for pid in pids if await _liquidatable(stores, pid, after)]
        return expected

    assert await shock(700) == {pids[0], pids[5]}  # the 5x longs; 2x and 1x longs survive -30 %
    assert await shock(1250) == {pids[2]}  # the 5x short; the 2x short survives
    assert (await marks.sweep()).liquidated == []
    for pid in pids:
        status = (await _position(stores, pid))["status"]
        assert status == ("liquidated" if pid in (pids[0], pids[2], pids[5]) else "open")

    # money is conserved: users' cash and margin plus the house equal what was granted
    total = 0
    for u in users:
        available, locked = await stores.redis.hmget(stores.keys.wallet(u), "available", "locked")
        assert _int(available) >= 0 and _int(locked) >= 0
        total += _int(available) + _int(locked)
    house = _int(await stores.redis.hget(stores.keys.wallet(0), "available"))
    assert total + house == 6 * 1_000_000

    # the liquidations went through the outbox into PostgreSQL; the index dropped them
    await flusher.flush_once()
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT position_id, payout FROM trades WHERE kind = 'liquidation' AND position_id = ANY(%s)",
            (pids,),
        )
        rows = dict(await cur.fetchall())
        cur = await conn.execute(
            "SELECT id FROM cfd_positions WHERE status = 'liquidated' AND id = ANY(%s)", (pids,)
        )
        persisted = {r[0] for r in await cur.fetchall()}
    assert set(rows) == persisted == {pids[0], pids[2], pids[5]}
    assert rows[pids[0]] == 0  # -30 % on a 5x long: the margin is gone, the house takes the rest
    indexed = await stores.redis.zrange(marks.k_liq("long", iid), 0, -1)
    indexed += await stores.redis.zrange(marks.k_liq("short", iid), 0, -1)
    assert sorted(int(x) for x in indexed) == sorted([pids[1], pids[3], pids[4]])


async def test_index_is_rebuilt_from_postgres_after_a_loss(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    res = await _open(stores, user, iid, "long", 100, 5)
    await Flusher(stores).flush_once()
    marks = Marks(stores)
    await marks.ensure_index()
    for key in (marks.k_liq("long", iid), marks.k_instruments, marks.k_holdings(user)):
        await stores.redis.delete(key)
    await stores.redis.set(stores.keys.boot_marker, "rebuilt")  # a new hot state
    assert await marks.ensure_index() is True
    assert await stores.redis.zscore(marks.k_liq("long", iid), str(res.position_id)) is not None
    assert await marks.ensure_index() is False
    await _index(stores, iid, 700)
    assert (await marks.sweep()).liquidated == [res.position_id]


async def test_snapshots_on_demand_and_on_schedule(stores: Stores) -> None:
    a, b = await make_trader(stores, district=41), await make_trader(stores, 2_000_000, district=41)
    marks = Marks(stores, snapshot_interval_s=300)
    await marks.remark([a, b], now=T0)
    taken = datetime.now(UTC).replace(microsecond=0)
    assert await take_snapshot(stores, taken_at=taken) == 4
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT scope, district_id, user_id, rank, equity FROM leaderboard_snapshots "
            "WHERE taken_at = %s ORDER BY scope DESC, rank",
            (taken,),
        )
        rows = await cur.fetchall()
    assert rows == [
        ("overall", None, b, 1, 2_000_000),
        ("overall", None, a, 2, 1_000_000),
        ("district", 41, b, 1, 2_000_000),
        ("district", 41, a, 2, 1_000_000),
    ]
    # on schedule: once the interval since the latest snapshot has passed, and not again before
    await stores.redis.set(stores.keys.boot_marker, "1")  # the flusher works on a complete hot state
    due = int(taken.timestamp() * 1000) + 301_000
    await marks.tick(now=due)
    await marks.tick(now=due + 1_000)
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM leaderboard_snapshots WHERE taken_at >= %s AND user_id = ANY(%s)",
            (datetime.fromtimestamp(due / 1000, UTC), [a, b]),
        )
        row = await cur.fetchone()
    assert row == (4,)
