"""``ftl audit`` on real Redis and PostgreSQL: passes when consistent, fails on each planted mismatch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ftl.audit import AuditReport, audit
from ftl.persistence.ledger import persist_trade
from ftl.persistence.recovery import rebuild
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import CloseResult, OpenResult
from ftl.worker.flusher import Flusher
from tests.persistence.support import make_instrument, make_trader, trading, wipe_redis


@pytest.fixture
async def stores(own_stores: Stores) -> Stores:  # overrides the shared one: a database of its own
    return own_stores


class World:
    """Two traders, one instrument: opens, a partial close, a full close, positions left open."""

    def __init__(self, user: int, other: int, instrument: int, open_ids: list[int]) -> None:
        self.user = user
        self.other = other
        self.instrument = instrument
        self.open_ids = open_ids


async def _world(stores: Stores) -> World:
    user, other = await make_trader(stores, district=3), await make_trader(stores)
    iid = await make_instrument(stores)
    t = trading(stores)
    a = await t.open(user_id=user, instrument_id=iid, side="long", qty=30, leverage=2,
                     acceptable_price=10**6, idempotency_key="a", district_id=3)  # fmt: skip
    b = await t.open(user_id=user, instrument_id=iid, side="short", qty=10, leverage=1,
                     acceptable_price=1, idempotency_key="b", district_id=3)  # fmt: skip
    c = await t.open(user_id=other, instrument_id=iid, side="long", qty=5, leverage=5,
                     acceptable_price=10**6, idempotency_key="c")  # fmt: skip
    assert isinstance(a, OpenResult) and isinstance(b, OpenResult) and isinstance(c, OpenResult)
    part = await t.close(user_id=user, position_id=a.position_id, qty=10, acceptable_price=1,
                         idempotency_key="d", district_id=3)  # fmt: skip
    full = await t.close(user_id=other, position_id=c.position_id, acceptable_price=1, idempotency_key="e")
    assert isinstance(part, CloseResult) and isinstance(full, CloseResult)
    async with stores.pg.connection() as conn:  # the api wrote some; the flusher finds the rest
        for result in (a, c, part):
            await persist_trade(conn, result.entry, stores.keys.prefix)
    await Flusher(stores).flush_once()
    return World(user, other, iid, [a.position_id, b.position_id])


async def _audit(stores: Stores) -> AuditReport:
    return await audit(stores, wait_s=3.0, attempts=2)


def _failed(report: AuditReport) -> set[str]:
    return {c.name for c in report.checks if c.mismatches}


async def test_consistent_state_passes(stores: Stores) -> None:
    await _world(stores)
    report = await _audit(stores)
    assert report.exit_code == 0, report.render()
    assert report.quiet and report.drained and report.watermark == 5
    by_name = {c.name: c for c in report.checks}
    assert by_name["trades balance (open, close, liquidation)"].checked == 5
    assert by_name["wallets: Redis = PostgreSQL (available, locked, seq)"].checked == 3  # 2 + house
    assert by_name["positions: Redis = PostgreSQL"].checked == 3
    assert "RESULT: OK" in report.render()


async def test_passes_after_redis_loss_and_rebuild(stores: Stores) -> None:
    await _world(stores)
    await wipe_redis(stores)
    await rebuild(stores)
    report = await _audit(stores)
    assert report.exit_code == 0, report.render()


async def test_redis_wallet_differs(stores: Stores) -> None:
    w = await _world(stores)
    await stores.redis.hincrby(stores.keys.wallet(w.user), "available", 7)
    report = await _audit(stores)
    assert report.exit_code == 1
    assert _failed(report) == {
        "wallets: Redis = PostgreSQL (available, locked, seq)",
        "conservation of money in Redis",
    }, report.render()
    assert "+7" in report.render()


async def test_postgres_wallet_differs(stores: Stores) -> None:
    w = await _world(stores)
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE wallets SET available = available - 3 WHERE user_id = %s", (w.other,))
    report = await _audit(stores)
    assert _failed(report) == {
        "wallets replay from grant + trades (PG)",
        "conservation of money in PostgreSQL",
        "wallets: Redis = PostgreSQL (available, locked, seq)",
    }, report.render()


async def test_negative_balance_in_redis(stores: Stores) -> None:
    w = await _world(stores)
    await stores.redis.hset(stores.keys.wallet(w.other), "available", -1)
    report = await _audit(stores)
    assert "no negative user balance (PG and Redis)" in _failed(report), report.render()


async def test_instrument_skew_differs(stores: Stores) -> None:
    w = await _world(stores)
    await stores.redis.hincrby(stores.keys.instrument(w.instrument), "skew", 1)
    report = await _audit(stores)
    assert _failed(report) == {
        "instruments: Redis = PostgreSQL (skew, long, short, index, status)",
        "instrument skew = Σ open positions (Redis)",
    }, report.render()


async def test_postgres_skew_column_differs(stores: Stores) -> None:
    w = await _world(stores)
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE instruments SET skew = skew + 2 WHERE id = %s", (w.instrument,))
    report = await _audit(stores)
    assert _failed(report) == {"instrument skew = Σ long - Σ short (PG rows)"}, report.render()


async def test_position_differs(stores: Stores) -> None:
    w = await _world(stores)
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE cfd_positions SET qty = qty + 1 WHERE id = %s", (w.open_ids[0],))
    report = await _audit(stores)
    assert _failed(report) == {
        "positions replay from their trades (PG)",
        "positions: Redis = PostgreSQL",
        "instrument skew = Σ long - Σ short (PG rows)",
        "instruments: Redis = PostgreSQL (skew, long, short, index, status)",
    }, report.render()


async def test_position_missing_from_redis(stores: Stores) -> None:
    w = await _world(stores)
    await stores.redis.delete(stores.keys.position(w.open_ids[1]))
    report = await _audit(stores)
    assert "positions: Redis = PostgreSQL" in _failed(report)
    assert f"open position {w.open_ids[1]} is missing from Redis" in report.render()


async def test_unbalanced_trade(stores: Stores) -> None:
    await _world(stores)
    async with stores.pg.connection() as conn:  # a close that paid one cent too much
        await conn.execute("UPDATE trades SET payout = payout + 1 WHERE kind = 'close' AND payout > 0")
    report = await _audit(stores)
    assert "trades balance (open, close, liquidation)" in _failed(report), report.render()
    assert "wallets replay from grant + trades (PG)" in _failed(report)


async def test_open_with_wrong_margin(stores: Stores) -> None:
    await _world(stores)
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE trades SET margin = margin + 1 WHERE id = 1")
    report = await _audit(stores)
    assert "trades balance (open, close, liquidation)" in _failed(report), report.render()


async def test_two_trades_for_one_idempotency_key(stores: Stores) -> None:
    w = await _world(stores)
    async with stores.pg.connection() as conn:
        await conn.execute("ALTER TABLE trades DROP CONSTRAINT trades_idempotency_unique")
        await conn.execute(
            "INSERT INTO trades SELECT 99, user_id, position_id, instrument_id, kind, side, qty, price, "
            "notional, fee, margin, realised_pnl, payout, leverage, index_price, skew_after, "
            "idempotency_key, request_hash, created_at FROM trades WHERE id = 1"
        )
    report = await _audit(stores)
    assert "one trade per (user, idempotency key)" in _failed(report), report.render()
    assert f"user {w.user} key 'a': 2 trades" in report.render()


async def test_redis_idempotency_key_points_elsewhere(stores: Stores) -> None:
    w = await _world(stores)
    await stores.redis.hset(stores.keys.idempotency(w.user, "b"), "trade", 1)
    report = await _audit(stores)
    assert _failed(report) == {"one trade per (user, idempotency key)"}, report.render()


async def test_outbox_not_drained_fails(stores: Stores) -> None:
    w = await _world(stores)
    t = trading(stores)
    late = await t.open(user_id=w.other, instrument_id=w.instrument, side="long", qty=1, leverage=1,
                        acceptable_price=10**6, idempotency_key="f")  # fmt: skip
    assert isinstance(late, OpenResult)  # no flusher runs: its outbox entry stays
    report = await audit(stores, wait_s=0.3, attempts=1)
    assert not report.drained and report.exit_code == 1
    assert "outbox drained" in _failed(report)


async def test_cli_exit_codes(stores: Stores, redis_url: str) -> None:
    w = await _world(stores)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    env.update(
        {
            "FTL_REDIS_URL": redis_url,
            "FTL_DATABASE_URL": str(stores.pg.conninfo),
            "FTL_REDIS_PREFIX": stores.keys.prefix,
        }
    )
    cmd = [sys.executable, "-m", "ftl", "audit", "--wait", "3"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "RESULT: OK" in ok.stdout
    await stores.redis.hincrby(stores.keys.instrument(w.instrument), "long", 1)
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "RESULT: FAIL" in bad.stdout


async def test_a_trade_without_its_position_is_reported(stores: Stores) -> None:
    """The ledger's rows carry no foreign keys: the audit checks the references instead."""
    await _world(stores)
    async with stores.pg.connection() as conn:
        await conn.execute(
            "INSERT INTO trades (id, user_id, position_id, instrument_id, kind, side, qty, price, "
            "notional, fee, margin, leverage, index_price, skew_after) "
            "SELECT 1000000000, user_id, 1000000000, instrument_id, kind, side, qty, price, notional, fee, "
            "margin, leverage, index_price, skew_after FROM trades ORDER BY id LIMIT 1"
        )
    report = await _audit(stores)
    assert report.exit_code == 1
    assert "trade 1000000000 has no position" in report.render()
