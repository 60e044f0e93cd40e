"""The audit's snapshot of PostgreSQL, read in one REPEATABLE READ transaction, and the SQL it runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ftl.audit.report import EXAMPLES
from ftl.persistence.stores import Stores


@dataclass
class PgSnapshot:
    max_trade: int = 0
    wallets: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # avail, locked, granted, seq
    open_positions: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    other_positions: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    instruments: dict[int, tuple[int, int, str, int, int]] = field(default_factory=dict)
    idempotency: dict[tuple[int, str], int] = field(default_factory=dict)
    bad_trades: list[tuple[Any, ...]] = field(default_factory=list)
    bad_trades_total: int = 0
    dangling: list[str] = field(default_factory=list)
    trades_total: int = 0
    duplicate_keys: list[tuple[Any, ...]] = field(default_factory=list)
    position_ledger: list[tuple[Any, ...]] = field(default_factory=list)
    positions_checked: int = 0
    positions_total: int = 0
    wallet_replay: list[tuple[Any, ...]] = field(default_factory=list)
    wallets_replayed: int = 0
    house_replay: tuple[int, int] = (0, 0)  # expected available, expected seq
    open_interest: dict[int, tuple[int, int]] = field(default_factory=dict)  # long_units, short_units


# A trade balances: an open locks margin = ceil(notional / leverage) and takes the fee (no payout,
# no PnL); a close or liquidation pays out max(margin released + PnL - fee, 0) and the house takes
# the rest. Notional is qty x price within one unit of rounding per unit.
_BAD_TRADES = """
FROM trades WHERE
    (kind = 'open' AND (payout <> 0 OR realised_pnl <> 0 OR margin * leverage < notional
                        OR (margin - 1) * leverage >= notional))
 OR (kind <> 'open' AND payout <> greatest(margin + realised_pnl - fee, 0))
 OR abs(notional - qty * price) > qty
"""

# Each position replayed from its trades (only rows whose last trade is at most the watermark).
_POSITION_LEDGER = """
WITH a AS (
    SELECT t.position_id,
           count(*) FILTER (WHERE t.kind = 'open') AS opens,
           sum(CASE WHEN t.kind = 'open' THEN t.qty ELSE -t.qty END) AS qty,
           sum(CASE WHEN t.kind = 'open' THEN t.margin ELSE -t.margin END) AS margin,
           sum(CASE WHEN t.kind = 'open' THEN t.notional
                    WHEN t.side = 'long' THEN -(t.notional - t.realised_pnl)
                    ELSE -(t.notional + t.realised_pnl) END) AS entry_notional,
           sum(t.realised_pnl) AS pnl,
           max(t.id) AS last_id,
           bool_or(t.user_id <> p.user_id OR t.instrument_id <> p.instrument_id
                   OR t.side <> p.side) AS foreign
    FROM trades t JOIN cfd_positions p ON p.id = t.position_id
    WHERE p.seq <= %(t)s GROUP BY t.position_id
)
SELECT p.id, p.qty, p.margin, p.entry_notional, p.realised_pnl, p.status, p.seq,
       a.opens, a.qty, a.margin, a.entry_notional, a.pnl, a.last_id, a.foreign
FROM cfd_positions p LEFT JOIN a ON a.position_id = p.id
WHERE p.seq <= %(t)s AND (
    a.position_id IS NULL OR a.opens <> 1 OR a.qty <> p.qty OR a.margin <> p.margin
    OR a.entry_notional <> p.entry_notional OR a.pnl <> p.realised_pnl OR a.last_id <> p.seq
    OR a.foreign OR (p.status = 'open') <> (p.qty > 0))
ORDER BY p.id LIMIT 1000
"""

# Each user's wallet replayed from the grant and its trades.
_WALLET_REPLAY = """
WITH a AS (
    SELECT user_id,
           sum(CASE WHEN kind = 'open' THEN -(margin + fee) ELSE payout END) AS cash,
           sum(CASE WHEN kind = 'open' THEN margin ELSE -margin END) AS locked,
           max(id) AS last_id
    FROM trades GROUP BY user_id
)
SELECT w.user_id, w.available, w.locked, w.seq,
       w.granted + coalesce(a.cash, 0), coalesce(a.locked, 0), coalesce(a.last_id, 0)
FROM wallets w LEFT JOIN a ON a.user_id = w.user_id
WHERE w.user_id <> 0 AND w.seq <= %(t)s AND (
    w.available <> w.granted + coalesce(a.cash, 0) OR w.locked <> coalesce(a.locked, 0)
    OR w.seq <> coalesce(a.last_id, 0))
ORDER BY w.user_id LIMIT 1000
"""


_DANGLING = f"""
SELECT 'trade ' || t.id || ' has no ' || CASE WHEN u.id IS NULL THEN 'user'
       WHEN p.id IS NULL THEN 'position' ELSE 'instrument' END
FROM trades t LEFT JOIN users u ON u.id = t.user_id LEFT JOIN cfd_positions p ON p.id = t.position_id
LEFT JOIN instruments i ON i.id = t.instrument_id
WHERE u.id IS NULL OR p.id IS NULL OR i.id IS NULL
UNION ALL
SELECT 'position ' || p.id || ' has no ' || CASE WHEN u.id IS NULL THEN 'user' ELSE 'instrument' END
FROM cfd_positions p LEFT JOIN users u ON u.id = p.user_id LEFT JOIN instruments i ON i.id = p.instrument_id
WHERE u.id IS NULL OR i.id IS NULL
LIMIT {EXAMPLES}
"""  # noqa: S608 (a constant)


async def snapshot_pg(stores: Stores, watermark: int, redis_positions: Iterable[int]) -> PgSnapshot:
    snap = PgSnapshot()
    t = {"t": watermark}
    async with stores.pg.connection() as conn:
        await conn.set_autocommit(False)
        try:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur = await conn.execute("SELECT coalesce(max(id), 0), count(*) FROM trades")
            row = await cur.fetchone()
            assert row is not None
            snap.max_trade, snap.trades_total = int(row[0]), int(row[1])
            # The ledger's rows carry no foreign keys (sql/0003): their references are checked here.
            cur = await conn.execute(_DANGLING)
            snap.dangling = [str(r[0]) for r in await cur.fetchall()]
            cur = await conn.execute("SELECT user_id, available, locked, granted, seq FROM wallets")
            for uid, a, lk, g, seq in await cur.fetchall():
                snap.wallets[uid] = (a, lk, g, seq)
            cur = await conn.execute(
                "SELECT i.id, i.index_price, i.skew, i.status, i.long_units, i.short_units, "
                "coalesce(sum(p.qty) FILTER (WHERE p.side = 'long'), 0)::bigint, "
                "coalesce(sum(p.qty) FILTER (WHERE p.side = 'short'), 0)::bigint "
                "FROM instruments i LEFT JOIN cfd_positions p "
                "ON p.instrument_id = i.id AND p.status = 'open' GROUP BY i.id"
            )
            for iid, index, skew, status, lu, su, lng, sht in await cur.fetchall():
                snap.instruments[iid] = (index, skew, status, lng, sht)
                snap.open_interest[iid] = (lu, su)
            cols = "id, user_id, instrument_id, side, qty, entry_notional, margin, status, seq"
            cur = await conn.execute(f"SELECT {cols} FROM cfd_positions WHERE status = 'open'")  # noqa: S608
            for pid, *rest in await cur.fetchall():
                snap.open_positions[pid] = tuple(rest)
            others = [p for p in redis_positions if p not in snap.open_positions]
            if others:
                cur = await conn.execute(
                    f"SELECT {cols} FROM cfd_positions WHERE id = ANY(%s)",  # noqa: S608
                    (others,),
                )
                for pid, *rest in await cur.fetchall():
                    snap.other_positions[pid] = tuple(rest)
            cur = await conn.execute(
                "SELECT user_id, idempotency_key, min(id), count(*) FROM trades "
                "WHERE idempotency_key IS NOT NULL GROUP BY user_id, idempotency_key"
            )
            for uid, key, tid, n in await cur.fetchall():
                snap.idempotency[(uid, key)] = tid
                if n > 1:
                    snap.duplicate_keys.append((uid, key, n))
            cur = await conn.execute(f"SELECT count(*) {_BAD_TRADES}")
            row = await cur.fetchone()
            snap.bad_trades_total = int(row[0]) if row else 0
            if snap.bad_trades_total:
                cur = await conn.execute(
                    "SELECT id, kind, side, qty, price, notional, fee, margin, leverage, "
                    f"realised_pnl, payout {_BAD_TRADES} ORDER BY id LIMIT {EXAMPLES}"
                )
                snap.bad_trades = list(await cur.fetchall())
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE seq <= %(t)s), count(*) FROM cfd_positions", t
            )
            row = await cur.fetchone()
            assert row is not None
            snap.positions_checked, snap.positions_total = int(row[0]), int(row[1])
            cur = await conn.execute(_POSITION_LEDGER, t)
            snap.position_ledger = list(await cur.fetchall())
            cur = await conn.execute("SELECT count(*) FROM wallets WHERE user_id <> 0 AND seq <= %(t)s", t)
            row = await cur.fetchone()
            snap.wallets_replayed = int(row[0]) if row else 0
            cur = await conn.execute(_WALLET_REPLAY, t)
            snap.wallet_replay = list(await cur.fetchall())
            cur = await conn.execute(
                "SELECT coalesce(sum(CASE WHEN kind = 'open' THEN fee ELSE margin - payout END), 0), "
                "coalesce(max(id), 0) FROM trades"
            )
            row = await cur.fetchone()
            assert row is not None
            snap.house_replay = (int(row[0]), int(row[1]))
        finally:
            await conn.rollback()
            await conn.set_autocommit(True)
    return snap
