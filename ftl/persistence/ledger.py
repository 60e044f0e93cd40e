"""The durable ledger: trades written from their outbox entries, fenced, chained and batched.

The entry is the self-contained map the trade scripts XADD to the outbox stream (see the headers
of lua/position_*.lua). One set-based statement writes a batch of entries for the api (group
commit) and for the flusher alike; docs/ledger.md explains the rules it enforces:

- *fencing*: an entry carries the epoch of the Redis that ran its script; it is written only while
  that epoch is the current one of its key prefix (``redis_epochs``). Every write holds the
  prefix's advisory lock shared; a rebuild takes it exclusively to raise the epoch;
- *chaining*: an entry carries its user's previous trade (``prev_seq``); it is written only when
  PostgreSQL has that trade (the wallet row's ``seq``) or the batch writes it first, so a user's
  rows never reflect a trade PostgreSQL does not have;
- *idempotency*: the trade id and ``(user_id, idempotency_key)`` are unique; an entry whose key is
  held by another trade is refused (``conflict``), never silently dropped;
- *no shared row*: the api writes the trade, its position, its user's wallet and a row in
  ``ledger_pending``; the flusher folds pending trades into the house wallet and the instruments'
  open interest (:func:`fold_pending`), each exactly once.

Wallet and position rows only move forward: each carries the id of the last trade it reflects.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import psycopg

# A trade's outbox entry, declared once for Python (Lua builds it in lua/include/trade.lua; a test
# holds the two to the same fields). A recorded trade read back (ENTRY_COLUMNS below, in this
# order) has the same fields, its position and wallet figures being today's rows.
ENTRY_FIELDS: Final = (
    "trade_id", "kind", "position_id", "instrument_id", "side", "qty", "price", "notional", "fee",
    "margin", "realised_pnl", "payout", "leverage", "index_price", "skew_after", "ts",
    "pos_qty", "pos_entry_price", "pos_entry_notional", "pos_margin", "pos_realised_pnl",
    "pos_status", "pos_seq", "pos_opened_ts", "pos_closed_ts", "w_available", "w_locked",
    "house_available", "user_id", "idempotency_key", "request_hash", "epoch", "prev_seq",
)  # fmt: skip
_TEXT_FIELDS: Final = {"kind": ("open", "close", "liquidation"), "side": ("long", "short"),
                       "pos_status": ("open", "closed", "liquidated")}  # fmt: skip
_NOT_STORED: Final = frozenset(
    {"pos_seq", "pos_closed_ts", "house_available", "idempotency_key", "request_hash"}
)
"""Fields the ledger write does not take from the entry as integers (its own columns or none)."""
_INT_FIELDS: Final = tuple(f for f in ENTRY_FIELDS if f not in _TEXT_FIELDS and f not in _NOT_STORED)
"""The integer fields of an entry PostgreSQL stores."""


class Outcome(enum.StrEnum):
    """What became of one entry in a ledger write."""

    WRITTEN = "written"  # recorded now
    PRESENT = "present"  # recorded before (the same trade)
    FENCED = "fenced"  # its Redis incarnation is no longer current: never recorded
    GAP = "gap"  # the user's previous trade is not recorded yet: try again later
    CONFLICT = "conflict"  # its idempotency key is held by another recorded trade
    COLLISION = "collision"  # another trade holds its id (a Redis that lost its counters)

    @property
    def confirmed(self) -> bool:
        return self in (Outcome.WRITTEN, Outcome.PRESENT)


class EntryError(ValueError):
    """An outbox entry that cannot be parsed (poison: it goes to the dead-letter stream)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def params(entry: Mapping[Any, Any]) -> dict[str, Any]:
    """Typed statement parameters from an outbox entry (bytes or str keys and values)."""
    try:
        raw = {_text(k): _text(v) for k, v in entry.items()}
        out: dict[str, Any] = {name: int(raw[name]) for name in _INT_FIELDS}
        for name, allowed in _TEXT_FIELDS.items():
            if raw[name] not in allowed:
                raise ValueError(f"{name} {raw[name]!r}")
            out[name] = raw[name]
        out["idempotency_key"] = raw.get("idempotency_key") or None
        out["request_hash"] = raw.get("request_hash") or None
        closed = raw.get("pos_closed_ts", "")
        out["pos_closed_ts"] = int(closed) if closed else None
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise EntryError(f"unparseable outbox entry: {exc!r}") from None
    return out


# The whole write is one statement: the function ftl_write_trades (sql/0003_ledger_v2.sql) takes
# the fence lock shared, locks the batch's wallets in user order and runs the write, each step in
# a fresh snapshot (a VOLATILE function). One round trip, one implicit transaction.
_WRITE = "SELECT trade_id, status FROM ftl_write_trades(%s, %s::jsonb)"


async def write_rows(
    conn: psycopg.AsyncConnection[Any], prefix: str, rows: Sequence[Mapping[str, Any]]
) -> dict[int, Outcome]:
    """Write parsed entries (:func:`params`) in one transaction and one round trip.

    Returns the outcome of each trade id. Raises what PostgreSQL raises; a statement error
    (a row constraint, say) fails the whole batch: :func:`write_each` isolates the culprit.
    """
    if not rows:
        return {}
    rows = list({int(r["trade_id"]): r for r in rows}.values())  # the same trade twice: once
    cur = await conn.execute(_WRITE, (prefix, json.dumps(rows)))
    return {int(tid): Outcome(status) for tid, status in await cur.fetchall()}


# Errors of one entry's data, not of the connection: writing the entry again cannot succeed.
PERMANENT_ERRORS: Final = (psycopg.errors.IntegrityError, psycopg.errors.DataError)


async def write_each(
    conn: psycopg.AsyncConnection[Any], prefix: str, rows: Sequence[Mapping[str, Any]]
) -> dict[int, Outcome | Exception]:
    """Write a batch; if its statement fails for a data reason, write the entries one by one (in
    trade order) so that only the culprits fail. Connection errors propagate."""
    try:
        return dict(await write_rows(conn, prefix, rows))
    except PERMANENT_ERRORS as exc:
        if len(rows) == 1:
            return {int(rows[0]["trade_id"]): exc}
    out: dict[int, Outcome | Exception] = {}
    for row in sorted(rows, key=lambda r: int(r["trade_id"])):
        try:
            out.update(await write_rows(conn, prefix, [row]))
        except PERMANENT_ERRORS as exc:
            out[int(row["trade_id"])] = exc
    return out


async def persist_trade(conn: psycopg.AsyncConnection[Any], entry: Mapping[Any, Any], prefix: str) -> Outcome:
    """Write one trade (and move its position and wallet forward)."""
    row = params(entry)
    return (await write_rows(conn, prefix, [row]))[row["trade_id"]]


# ---------------------------------------------------------------------------------------------
# Folding the aggregates (the flusher's job; the rebuild folds everything first)

FOLD_LOCK = "SELECT pg_advisory_xact_lock(hashtext('ftl-fold'))"
_FOLD_SQL = """
WITH d AS (
    DELETE FROM ledger_pending WHERE trade_id IN (
        SELECT trade_id FROM ledger_pending ORDER BY trade_id LIMIT %(limit)s)
    RETURNING trade_id
), f AS (
    SELECT t.instrument_id,
           sum(CASE WHEN t.side <> 'long' THEN 0 WHEN t.kind = 'open' THEN t.qty ELSE -t.qty END)
               AS d_long,
           sum(CASE WHEN t.side <> 'short' THEN 0 WHEN t.kind = 'open' THEN t.qty ELSE -t.qty END)
               AS d_short,
           sum(CASE WHEN t.kind = 'open' THEN t.fee ELSE t.margin - t.payout END) AS d_house,
           max(t.id) AS last_id
    FROM d JOIN LATERAL (SELECT * FROM trades WHERE trades.id = d.trade_id LIMIT 1) t ON true
    GROUP BY t.instrument_id
), i AS (
    UPDATE instruments SET long_units = long_units + f.d_long,
                           short_units = short_units + f.d_short,
                           skew = skew + f.d_long - f.d_short, updated_at = now()
    FROM f WHERE instruments.id = f.instrument_id
    RETURNING 1
), h AS (
    UPDATE wallets SET available = available + (SELECT sum(d_house) FROM f),
                       seq = greatest(seq, (SELECT max(last_id) FROM f)), updated_at = now()
    WHERE user_id = 0 AND EXISTS (SELECT 1 FROM f)
    RETURNING 1
)
SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM i), (SELECT count(*) FROM h)
"""

# A trade's effect on the house wallet (fee on an open; margin released - payout on a close).
HOUSE_DELTA_SQL: Final = "CASE WHEN kind = 'open' THEN fee ELSE margin - payout END"


async def fold_pending(conn: psycopg.AsyncConnection[Any], limit: int = 10_000) -> int:
    """Fold up to ``limit`` pending trades into the aggregates; returns how many were folded.

    One transaction: the pending rows are deleted as their deltas are applied, so a trade is
    folded exactly once whatever dies. Folds are serialised by an advisory lock (instrument rows
    are then never locked in two orders).
    """
    async with conn.pipeline(), conn.transaction():
        await conn.execute(FOLD_LOCK)
        cur = await conn.execute(_FOLD_SQL, {"limit": limit})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def fold_all(conn: psycopg.AsyncConnection[Any], limit: int = 50_000) -> int:
    total = 0
    while n := await fold_pending(conn, limit):
        total += n
    return total


_REPAIR_SQL = f"""
WITH o AS (
    SELECT i.id, coalesce(sum(p.qty) FILTER (WHERE p.side = 'long'), 0) AS lng,
           coalesce(sum(p.qty) FILTER (WHERE p.side = 'short'), 0) AS sht
    FROM instruments i LEFT JOIN cfd_positions p ON p.instrument_id = i.id AND p.status = 'open'
    GROUP BY i.id
), i AS (
    UPDATE instruments SET long_units = o.lng, short_units = o.sht, skew = o.lng - o.sht,
                           updated_at = now()
    FROM o WHERE instruments.id = o.id
      AND (long_units, short_units, skew) IS DISTINCT FROM (o.lng, o.sht, o.lng - o.sht)
    RETURNING 1
), h AS (
    UPDATE wallets SET available = granted + coalesce((SELECT sum({HOUSE_DELTA_SQL}) FROM trades), 0),
                       locked = 0,
                       seq = greatest(seq, coalesce((SELECT max(id) FROM trades), 0))
    WHERE user_id = 0 AND available IS DISTINCT FROM
          granted + coalesce((SELECT sum({HOUSE_DELTA_SQL}) FROM trades), 0)
    RETURNING 1
)
SELECT (SELECT count(*) FROM i), (SELECT count(*) FROM h)
"""  # noqa: S608 (only constant SQL parts are interpolated)


async def repair_aggregates(conn: psycopg.AsyncConnection[Any]) -> tuple[int, int]:
    """Recompute the aggregates from the rows they summarise (after :func:`fold_all`).

    Returns (instruments corrected, 1 if the house wallet was corrected): both 0 when folding
    had kept them exact, as it should.
    """
    async with conn.transaction():
        await conn.execute(FOLD_LOCK)
        cur = await conn.execute(_REPAIR_SQL)
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


# ---------------------------------------------------------------------------------------------
# Fencing (the rebuild's first step)


async def new_epoch(conn: psycopg.AsyncConnection[Any], prefix: str) -> int:
    """Raise the epoch of ``prefix`` (``ftl_new_epoch``, sql/0003): from its commit on, writes of
    older epochs are refused. It waits for every write in flight (they hold the fence lock
    shared); writes that start later see the new epoch."""
    cur = await conn.execute("SELECT ftl_new_epoch(%s)", (prefix,))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


# ---------------------------------------------------------------------------------------------
# Recorded trades as entries (durable idempotency, and the rebuild's idempotency records)

ENTRY_COLUMNS: Final = """
       t.id::text, t.kind, t.position_id::text, t.instrument_id::text, t.side, t.qty::text,
       t.price::text, t.notional::text, t.fee::text, t.margin::text, t.realised_pnl::text,
       t.payout::text, t.leverage::text, t.index_price::text, t.skew_after::text,
       (extract(epoch FROM t.created_at) * 1000)::bigint::text,
       p.qty::text, p.entry_price::text, p.entry_notional::text, p.margin::text,
       p.realised_pnl::text, p.status, p.seq::text,
       (extract(epoch FROM p.opened_at) * 1000)::bigint::text,
       coalesce((extract(epoch FROM p.closed_at) * 1000)::bigint::text, ''),
       w.available::text, w.locked::text, '0', t.user_id::text, t.idempotency_key,
       t.request_hash, '0', '0'"""
ENTRY_JOINS: Final = (
    "JOIN LATERAL (SELECT * FROM cfd_positions WHERE cfd_positions.id = t.position_id LIMIT 1) p ON true "
    "JOIN LATERAL (SELECT * FROM wallets WHERE wallets.user_id = t.user_id LIMIT 1) w ON true"
)

_RECORDED_SQL = f"""
SELECT t.user_id, t.idempotency_key, {ENTRY_COLUMNS}
FROM unnest(%s::bigint[], %s::text[]) AS k(user_id, key)
JOIN LATERAL (SELECT * FROM trades WHERE trades.user_id = k.user_id
              AND trades.idempotency_key = k.key LIMIT 1) t ON true
{ENTRY_JOINS}
"""  # noqa: S608 (only constant SQL parts are interpolated)


async def recorded(
    conn: psycopg.AsyncConnection[Any], keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], dict[str, str]]:
    """The recorded trades of these (user id, idempotency key) pairs, as outbox entries."""
    if not keys:
        return {}
    cur = await conn.execute(_RECORDED_SQL, ([u for u, _ in keys], [k for _, k in keys]))
    out: dict[tuple[int, str], dict[str, str]] = {}
    for row in await cur.fetchall():
        out[(int(row[0]), str(row[1]))] = dict(zip(ENTRY_FIELDS, row[2:], strict=True))
    return out


_USED_KEYS_SQL = """
SELECT t.user_id, t.idempotency_key
FROM unnest(%s::bigint[]) AS u(user_id)
JOIN trades t ON t.user_id = u.user_id AND t.idempotency_key IS NOT NULL
"""


async def used_keys(conn: psycopg.AsyncConnection[Any], user_ids: Sequence[int]) -> dict[int, list[str]]:
    """Every idempotency key PostgreSQL holds for these users (to fill their used-keys sets)."""
    out: dict[int, list[str]] = {u: [] for u in user_ids}
    if not user_ids:
        return out
    cur = await conn.execute(_USED_KEYS_SQL, (list(user_ids),))
    for user_id, key in await cur.fetchall():
        out[int(user_id)].append(str(key))
    return out
