"""Write a trade from its outbox entry into PostgreSQL: idempotent on the trade id, one round trip.

The entry is the self-contained map the trade scripts XADD to the outbox stream (see the headers
of lua/position_*.lua). The same statement serves the hot path (right after the Lua call) and
the flusher draining the outbox, so a trade is written exactly once whoever gets there first.
Wallet and position rows only move forward: each carries the id of the last trade it reflects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg

_SQL = """
WITH p AS (
    INSERT INTO cfd_positions (id, user_id, instrument_id, side, qty, entry_price,
                               entry_notional, margin, leverage, realised_pnl, status, seq,
                               opened_at, closed_at)
    VALUES (%(position_id)s, %(user_id)s, %(instrument_id)s, %(side)s, %(pos_qty)s,
            %(pos_entry_price)s, %(pos_entry_notional)s, %(pos_margin)s, %(leverage)s,
            %(pos_realised_pnl)s, %(pos_status)s, %(trade_id)s,
            to_timestamp(%(pos_opened_ts)s / 1000.0),
            CASE WHEN %(pos_closed_ts)s::bigint IS NULL THEN NULL
                 ELSE to_timestamp(%(pos_closed_ts)s::bigint / 1000.0) END)
    ON CONFLICT (id) DO UPDATE SET
        qty = EXCLUDED.qty, entry_price = EXCLUDED.entry_price,
        entry_notional = EXCLUDED.entry_notional, margin = EXCLUDED.margin,
        realised_pnl = EXCLUDED.realised_pnl, status = EXCLUDED.status, seq = EXCLUDED.seq,
        closed_at = EXCLUDED.closed_at
    WHERE cfd_positions.seq < EXCLUDED.seq
    RETURNING 1
), t AS (
    INSERT INTO trades (id, user_id, position_id, instrument_id, kind, side, qty, price,
                        notional, fee, margin, realised_pnl, payout, leverage, index_price,
                        skew_after, idempotency_key, request_hash, created_at)
    VALUES (%(trade_id)s, %(user_id)s, %(position_id)s, %(instrument_id)s, %(kind)s, %(side)s,
            %(qty)s, %(price)s, %(notional)s, %(fee)s, %(margin)s, %(realised_pnl)s,
            %(payout)s, %(leverage)s, %(index_price)s, %(skew_after)s, %(idempotency_key)s,
            %(request_hash)s, to_timestamp(%(ts)s / 1000.0))
    ON CONFLICT DO NOTHING
    RETURNING 1
), w AS (
    UPDATE wallets SET available = %(w_available)s, locked = %(w_locked)s, seq = %(trade_id)s,
                       updated_at = now()
    WHERE user_id = %(user_id)s AND seq < %(trade_id)s
    RETURNING 1
), h AS (
    UPDATE wallets SET available = %(house_available)s, seq = %(trade_id)s, updated_at = now()
    WHERE user_id = 0 AND seq < %(trade_id)s
    RETURNING 1
)
SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM p), (SELECT count(*) FROM w),
       (SELECT count(*) FROM h)
"""

_INT_FIELDS = (
    "trade_id", "user_id", "position_id", "instrument_id", "qty", "price", "notional", "fee",
    "margin", "realised_pnl", "payout", "leverage", "index_price", "skew_after", "ts",
    "pos_qty", "pos_entry_price", "pos_entry_notional", "pos_margin", "pos_realised_pnl",
    "pos_opened_ts", "w_available", "w_locked", "house_available",
)  # fmt: skip


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def params(entry: Mapping[Any, Any]) -> dict[str, Any]:
    """Typed statement parameters from an outbox entry (bytes or str keys and values)."""
    raw = {_text(k): _text(v) for k, v in entry.items()}
    out: dict[str, Any] = {name: int(raw[name]) for name in _INT_FIELDS}
    for name in ("kind", "side", "pos_status"):
        out[name] = raw[name]
    out["idempotency_key"] = raw.get("idempotency_key") or None
    out["request_hash"] = raw.get("request_hash") or None
    closed = raw.get("pos_closed_ts", "")
    out["pos_closed_ts"] = int(closed) if closed else None
    return out


async def persist_trade(conn: psycopg.AsyncConnection[Any], entry: Mapping[Any, Any]) -> bool:
    """Write one trade (and move its position and wallets forward). True if the trade was new."""
    cur = await conn.execute(_SQL, params(entry))
    row = await cur.fetchone()
    return bool(row and row[0])


_BATCH_SQL = """
WITH e AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS x(
        trade_id bigint, kind text, user_id bigint, position_id bigint, instrument_id bigint,
        side text, qty bigint, price bigint, notional bigint, fee bigint, margin bigint,
        realised_pnl bigint, payout bigint, leverage smallint, index_price bigint,
        skew_after bigint, idempotency_key text, request_hash text, ts bigint, pos_qty bigint,
        pos_entry_price bigint, pos_entry_notional bigint, pos_margin bigint,
        pos_realised_pnl bigint, pos_status text, pos_opened_ts bigint, pos_closed_ts bigint,
        w_available bigint, w_locked bigint, house_available bigint)
), p AS (
    INSERT INTO cfd_positions (id, user_id, instrument_id, side, qty, entry_price,
                               entry_notional, margin, leverage, realised_pnl, status, seq,
                               opened_at, closed_at)
    SELECT DISTINCT ON (position_id) position_id, user_id, instrument_id, side, pos_qty,
           pos_entry_price, pos_entry_notional, pos_margin, leverage, pos_realised_pnl,
           pos_status, trade_id, to_timestamp(pos_opened_ts / 1000.0),
           to_timestamp(pos_closed_ts / 1000.0)
    FROM e ORDER BY position_id, trade_id DESC
    ON CONFLICT (id) DO UPDATE SET
        qty = EXCLUDED.qty, entry_price = EXCLUDED.entry_price,
        entry_notional = EXCLUDED.entry_notional, margin = EXCLUDED.margin,
        realised_pnl = EXCLUDED.realised_pnl, status = EXCLUDED.status, seq = EXCLUDED.seq,
        closed_at = EXCLUDED.closed_at
    WHERE cfd_positions.seq < EXCLUDED.seq
    RETURNING 1
), t AS (
    INSERT INTO trades (id, user_id, position_id, instrument_id, kind, side, qty, price,
                        notional, fee, margin, realised_pnl, payout, leverage, index_price,
                        skew_after, idempotency_key, request_hash, created_at)
    SELECT trade_id, user_id, position_id, instrument_id, kind, side, qty, price, notional, fee,
           margin, realised_pnl, payout, leverage, index_price, skew_after, idempotency_key,
           request_hash, to_timestamp(ts / 1000.0)
    FROM e ORDER BY trade_id
    ON CONFLICT DO NOTHING
    RETURNING 1
), w AS (
    UPDATE wallets SET available = l.w_available, locked = l.w_locked, seq = l.trade_id,
                       updated_at = now()
    FROM (SELECT DISTINCT ON (user_id) user_id, w_available, w_locked, trade_id
          FROM e ORDER BY user_id, trade_id DESC) l
    WHERE wallets.user_id = l.user_id AND wallets.seq < l.trade_id
    RETURNING 1
), h AS (
    UPDATE wallets SET available = l.house_available, seq = l.trade_id, updated_at = now()
    FROM (SELECT house_available, trade_id FROM e ORDER BY trade_id DESC LIMIT 1) l
    WHERE wallets.user_id = 0 AND wallets.seq < l.trade_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM p), (SELECT count(*) FROM w),
       (SELECT count(*) FROM h)
"""


async def persist_trades(conn: psycopg.AsyncConnection[Any], entries: list[Mapping[Any, Any]]) -> int:
    """Write many trades with one set-based statement; returns how many were new.

    Same effect as :func:`persist_trade` for each entry in trade order: each position and wallet
    row ends at its latest trade of the batch (and never moves backwards).
    """
    if not entries:
        return 0
    rows = [params(e) for e in entries]
    async with conn.transaction():
        cur = await conn.execute(_BATCH_SQL, (json.dumps(rows),))
        row = await cur.fetchone()
        # Every trade passes through here (the hot path's too): the skew of each instrument it
        # touched is recomputed from the open positions PostgreSQL now has.
        await conn.execute(_SKEW_SQL, (sorted({r["instrument_id"] for r in rows}),))
    return int(row[0]) if row else 0


_SKEW_SQL = """
UPDATE instruments i SET skew = coalesce((
    SELECT sum(CASE p.side WHEN 'long' THEN p.qty ELSE -p.qty END)
    FROM cfd_positions p WHERE p.instrument_id = i.id AND p.status = 'open'), 0)
WHERE i.id = ANY(%s)
"""
