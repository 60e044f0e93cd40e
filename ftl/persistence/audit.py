"""``ftl audit``: reconcile Redis with PostgreSQL, check money is conserved and every trade balances.

How it copes with the flusher's lag (and with trading that goes on during the audit):

1. It reads the trade counter ``T`` (Redis ``seq.trade``: every trade so far has an id ≤ T) and
   waits, bounded by ``wait_s``, until the outbox holds no entry of a trade ≤ T: every trade ≤ T
   is then in PostgreSQL. An outbox that does not drain in time is itself a failed check.
2. It reads Redis (every wallet, instrument, known position and idempotency key, pipelined in
   chunks), then PostgreSQL in one REPEATABLE READ transaction.
3. Rows whose sequence (id of the last trade they reflect) is above ``T``, in Redis or in
   PostgreSQL, are skipped: they moved during the audit. The cross-row checks (conservation over
   PostgreSQL rows and over Redis, skews against Redis, index prices) need a *quiet* snapshot: no
   trade after ``T`` anywhere (the counters did not move while reading) and an empty dirty set.
   The audit retries up to ``attempts`` times to get one; if it never does, those checks are
   reported as skipped and the exit code is 3 (partial).

Exit codes: 0 everything checked and consistent, 1 a mismatch (or the outbox did not drain),
2 the audit could not run (no servers), 3 no mismatch but some checks were skipped because
trading never paused.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftl.stores import Stores

EXAMPLES = 10
SNAPSHOT_CHUNK = 5000


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _int(v: Any) -> int | None:
    return None if v is None or v == b"" or v == "" else int(v)


@dataclass
class Check:
    """One line of the report: how many things were checked, skipped, and what did not match."""

    name: str
    checked: int = 0
    skipped: int = 0
    mismatches: int = 0
    examples: list[str] = field(default_factory=list)
    note: str = ""

    def fail(self, message: str) -> None:
        self.mismatches += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(message)


@dataclass
class AuditReport:
    """Every check of one audit, with the watermark it used."""

    watermark: int = 0
    drained: bool = True
    quiet: bool = True
    attempts: int = 0
    seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str) -> Check:
        found = Check(name)
        self.checks.append(found)
        return found

    @property
    def mismatches(self) -> int:
        return sum(c.mismatches for c in self.checks)

    @property
    def partial(self) -> bool:
        return any(c.note.startswith("skipped") for c in self.checks)

    @property
    def exit_code(self) -> int:
        if self.mismatches:
            return 1
        return 3 if self.partial else 0

    def failed(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name and c.mismatches), None)

    def render(self) -> str:
        lines = [
            f"ftl audit: watermark trade {self.watermark}, outbox "
            f"{'drained' if self.drained else 'NOT drained'}, snapshot "
            f"{'quiet' if self.quiet else 'taken while trading went on'} "
            f"(attempt {self.attempts}, {self.seconds:.2f} s)",
            "",
            f"{'check':<68}{'checked':>10}{'skipped':>10}{'mismatches':>12}",
        ]
        for c in self.checks:
            lines.append(f"{c.name:<68}{c.checked:>10}{c.skipped:>10}{c.mismatches:>12}")
            if c.note:
                lines.append(f"    {c.note}")
            lines.extend(f"    - {e}" for e in c.examples)
            if c.mismatches > len(c.examples):
                lines.append(f"    ... and {c.mismatches - len(c.examples)} more")
        lines.append("")
        if self.mismatches:
            lines.append(f"RESULT: FAIL, {self.mismatches} mismatch(es)")
        elif self.partial:
            lines.append("RESULT: PARTIAL, no mismatch, but trading never paused: some checks skipped")
        else:
            lines.append("RESULT: OK, Redis and PostgreSQL agree; money is conserved")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Snapshots


@dataclass
class RedisSnapshot:
    trade_counter: int = 0
    position_counter: int = 0
    dirty: int = 0
    wallets: dict[int, tuple[int, int, int] | None] = field(default_factory=dict)
    instruments: dict[int, tuple[int | None, int, int, int, str] | None] = field(default_factory=dict)
    positions: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    idempotency: dict[tuple[int, str], int] = field(default_factory=dict)
    dead_letters: list[str] = field(default_factory=list)


_POS_FIELDS = ("user", "instrument", "side", "qty", "entry_notional", "margin", "status", "seq")


async def _scan_ids(stores: Stores, pattern: str) -> list[str]:
    out: list[str] = []
    async for key in stores.redis.scan_iter(match=pattern, count=5000):
        out.append(_text(key))
    return out


async def _snapshot_redis(
    stores: Stores, users: Sequence[int], instruments: Sequence[int], pg_open: Iterable[int]
) -> RedisSnapshot:
    k = stores.keys
    r = stores.redis
    prefix = k.position("")
    position_ids = {int(key[len(prefix) :]) for key in await _scan_ids(stores, prefix + "*")}
    position_ids.update(pg_open)
    idem_prefix = k.idempotency("", "")[:-2]  # "<prefix>idem:"
    idem_keys = await _scan_ids(stores, idem_prefix + ":*")
    pids = sorted(position_ids)

    # Pipelined in chunks (no MULTI: an audit must not block Redis); the caller checks the trade
    # counter did not move while reading, else the cross-key checks are skipped.
    commands: list[tuple[str, tuple[Any, ...]]] = [
        ("hmget", (k.seq, "trade", "position")),
        ("scard", (k.dirty,)),
        ("exists", (k.dirty + ":processing",)),
    ]
    commands += [("hmget", (k.wallet(uid), "available", "locked", "seq")) for uid in users]
    commands += [
        ("hmget", (k.instrument(iid), "index", "skew", "long", "short", "status")) for iid in instruments
    ]
    commands += [("hmget", (k.position(pid), *_POS_FIELDS)) for pid in pids]
    commands += [("hget", (key, "trade")) for key in idem_keys]
    replies: list[Any] = []
    for start in range(0, len(commands), SNAPSHOT_CHUNK):
        pipe = r.pipeline(transaction=False)
        for name, args in commands[start : start + SNAPSHOT_CHUNK]:
            getattr(pipe, name)(*args)
        replies += await pipe.execute()

    snap = RedisSnapshot()
    counters, dirty, processing = replies[0], replies[1], replies[2]
    snap.trade_counter = _int(counters[0]) or 0
    snap.position_counter = _int(counters[1]) or 0
    snap.dirty = int(dirty) + int(processing)
    snap.dead_letters = await _dead_letters(stores)
    at = 3
    for uid in users:
        a, lk, seq = replies[at]
        at += 1
        snap.wallets[uid] = None if a is None else (int(a), int(lk or 0), int(seq or 0))
    for iid in instruments:
        index, skew, lng, sht, status = replies[at]
        at += 1
        snap.instruments[iid] = (
            None
            if skew is None and index is None
            else (_int(index), int(skew or 0), int(lng or 0), int(sht or 0), _text(status or b"open"))
        )
    for pid in pids:
        h = replies[at]
        at += 1
        if h[0] is None:
            continue
        user, iid, side, qty, en, margin, status, seq = h
        snap.positions[pid] = (
            int(user), int(iid), _text(side), int(qty), int(en), int(margin), _text(status), int(seq),
        )  # fmt: skip
    for key in idem_keys:
        trade = replies[at]
        at += 1
        user, _, idem = key[len(idem_prefix) + 1 :].partition(":")
        if trade is not None and user.isdigit():
            snap.idempotency[(int(user), idem)] = int(trade)
    return snap


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


async def _snapshot_pg(stores: Stores, watermark: int, redis_positions: Iterable[int]) -> PgSnapshot:
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


# ---------------------------------------------------------------------------------------------
# Waiting for the flusher


async def _outbox_behind(stores: Stores, watermark: int) -> int:
    """How many outbox entries of trades at most ``watermark`` are not yet flushed (0 = none)."""
    r = stores.redis
    first = await r.xrange(stores.keys.outbox, count=1)
    if not first:
        return 0
    fields = {_text(a): _text(b) for a, b in (first[0][1] or {}).items()}
    if int(fields.get("trade_id", "0") or 0) > watermark:
        return 0
    return int(await r.xlen(stores.keys.outbox))


async def _unfolded(stores: Stores, watermark: int) -> int:
    """How many trades at most ``watermark`` are recorded but not yet folded into the aggregates."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM ledger_pending WHERE trade_id <= %s", (watermark,))
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _dead_letters(stores: Stores) -> list[str]:
    """The reasons of the entries in the dead-letter stream (the newest few)."""
    r = stores.redis
    n = int(await r.xlen(stores.keys.outbox_dead))
    if not n:
        return []
    newest: list[Any] = list(await r.xrevrange(stores.keys.outbox_dead, count=EXAMPLES) or [])
    lines = [f"{n} dead letter(s): `XRANGE {stores.keys.outbox_dead} - +` shows them"]
    for eid, fields in newest:
        f = fields or {}
        lines.append(
            f"{_text(eid)}: {_text(f.get(b'reason', b'?'))} (trade {_text(f.get(b'f:trade_id', b'?'))})"
        )
    return lines


async def _dirty(stores: Stores) -> int:
    k = stores.keys
    pipe = stores.redis.pipeline(transaction=False)
    pipe.scard(k.dirty)
    pipe.exists(k.dirty + ":processing")
    a, b = await pipe.execute()
    return int(a) + int(b)


async def _wait_flushed(stores: Stores, watermark: int, deadline: float) -> tuple[bool, int]:
    """Poll until every trade ≤ watermark left the outbox (required) and the dirty set is empty
    (best effort, at most 2 s more). Returns (drained, entries still behind)."""
    behind = await _outbox_behind(stores, watermark) + await _unfolded(stores, watermark)
    while behind and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        behind = await _outbox_behind(stores, watermark) + await _unfolded(stores, watermark)
    if behind:
        return False, behind
    dirty_deadline = min(deadline, time.monotonic() + 2.0)
    dirty = await _dirty(stores)
    while dirty and time.monotonic() < dirty_deadline:
        await asyncio.sleep(0.05)
        dirty = await _dirty(stores)
    return True, 0


# ---------------------------------------------------------------------------------------------
# The checks


def _checks(report: AuditReport, red: RedisSnapshot, pg: PgSnapshot, users: Sequence[int]) -> None:
    t = report.watermark
    quiet = report.quiet
    skipped_note = "skipped: trading went on during the audit (needs a quiet snapshot)"

    c = report.check("trades balance (open, close, liquidation)")
    c.checked = pg.trades_total
    for row in pg.bad_trades:
        tid, kind, side, qty, price, notional, fee, margin, lev, pnl, payout = row
        c.fail(
            f"trade {tid} ({kind} {side}): qty {qty} price {price} notional {notional} fee {fee} "
            f"margin {margin} leverage {lev} pnl {pnl} payout {payout}"
        )
    c.mismatches = max(c.mismatches, pg.bad_trades_total)

    c = report.check("one trade per (user, idempotency key)")
    c.checked = len(pg.idempotency)
    for uid, key, n in pg.duplicate_keys:
        c.fail(f"user {uid} key {key!r}: {n} trades")
    for (uid, key), tid in sorted(red.idempotency.items()):
        c.checked += 1
        if tid > t:
            c.skipped += 1
            continue
        found = pg.idempotency.get((uid, key))
        if found != tid:
            c.fail(f"Redis idem:{uid}:{key} -> trade {tid}, PostgreSQL has {found}")

    c = report.check("positions replay from their trades (PG)")
    c.checked, c.skipped = pg.positions_checked, pg.positions_total - pg.positions_checked
    for row in pg.position_ledger:
        pid, qty, margin, en, rp, status, seq, opens, rq, rm, ren, rpnl, last, foreign = row
        c.fail(
            f"position {pid} ({status}): qty {qty}/{rq} margin {margin}/{rm} entry_notional "
            f"{en}/{ren} realised {rp}/{rpnl} seq {seq}/{last} opens {opens} foreign {foreign} "
            "(row/replay)"
        )

    c = report.check("wallets replay from grant + trades (PG)")
    c.checked = pg.wallets_replayed
    c.skipped = len(pg.wallets) - 1 - pg.wallets_replayed
    for uid, a, lk, seq, ea, el, es in pg.wallet_replay:
        c.fail(f"wallet {uid}: available {a}/{ea} locked {lk}/{el} seq {seq}/{es} (row/replay)")
    house = pg.wallets.get(0)
    if house is None:
        c.fail("the house wallet (user 0) is missing")
    elif house[3] <= t and pg.max_trade <= t:
        c.checked += 1
        granted = house[2]
        if (house[0], house[1], house[3]) != (granted + pg.house_replay[0], 0, pg.house_replay[1]):
            c.fail(
                f"house: available {house[0]}/{granted + pg.house_replay[0]} locked {house[1]}/0 "
                f"seq {house[3]}/{pg.house_replay[1]} (row/replay)"
            )
    else:
        c.skipped += 1

    c = report.check("no negative user balance (PG and Redis)")
    for uid, (a, lk, _g, _s) in pg.wallets.items():
        if uid == 0:
            continue
        c.checked += 1
        if a < 0 or lk < 0:
            c.fail(f"PostgreSQL wallet {uid}: available {a} locked {lk}")
    for uid, w in red.wallets.items():
        if uid == 0 or w is None:
            continue
        c.checked += 1
        if w[0] < 0 or w[1] < 0:
            c.fail(f"Redis wallet {uid}: available {w[0]} locked {w[1]}")

    c = report.check("conservation of money in PostgreSQL")
    if quiet:
        total = sum(a + lk for a, lk, _g, _s in pg.wallets.values())
        granted = sum(g for _a, _lk, g, _s in pg.wallets.values())
        c.checked = len(pg.wallets)
        if total != granted:
            c.fail(f"Σ available + Σ locked + house = {total}, Σ granted = {granted} ({total - granted:+d})")
    else:
        c.note = skipped_note

    c = report.check("conservation of money in Redis")
    total = granted = 0
    for uid in users:
        w_pg = pg.wallets.get(uid)
        w_hot = red.wallets.get(uid)
        if w_pg is None:
            continue
        granted += w_pg[2]
        total += w_hot[0] + w_hot[1] if w_hot is not None else w_pg[0] + w_pg[1]
    missing = sum(1 for uid in users if red.wallets.get(uid) is None and uid in pg.wallets)
    if quiet:
        c.checked = len(users)
        if red.wallets.get(0) is None:
            c.fail("the house wallet is missing from Redis")
        elif total != granted:
            c.fail(
                f"Σ available + Σ locked + house = {total}, Σ granted = {granted} ({total - granted:+d}); "
                f"{missing} wallet(s) not in Redis counted from PostgreSQL"
            )
    else:
        c.note = skipped_note

    c = report.check("wallets: Redis = PostgreSQL (available, locked, seq)")
    for uid in users:
        w_row = pg.wallets.get(uid)
        w_red = red.wallets.get(uid)
        if w_row is None:
            if w_red is not None:
                c.fail(f"wallet {uid} is in Redis but has no PostgreSQL row")
            continue
        if w_red is None:  # loaded lazily on its first trade
            c.skipped += 1
            continue
        if w_red[2] > t or w_row[3] > t:
            c.skipped += 1
            continue
        c.checked += 1
        if w_red != (w_row[0], w_row[1], w_row[3]):
            c.fail(
                f"wallet {uid}: Redis available {w_red[0]} locked {w_red[1]} seq {w_red[2]}; "
                f"PostgreSQL available {w_row[0]} locked {w_row[1]} seq {w_row[3]}"
            )

    c = report.check("positions: Redis = PostgreSQL")
    every = {**pg.other_positions, **pg.open_positions}
    for pid in sorted(set(every) | set(red.positions)):
        p_row = every.get(pid)
        p_red = red.positions.get(pid)
        if (p_red is not None and p_red[7] > t) or (p_row is not None and p_row[7] > t):
            c.skipped += 1
            continue
        c.checked += 1
        if p_red is None:
            c.fail(f"open position {pid} is missing from Redis")
        elif p_row is None:
            c.fail(f"position {pid} is in Redis ({p_red[6]}, seq {p_red[7]}) but not in PostgreSQL")
        elif tuple(p_red) != tuple(p_row):
            c.fail(
                f"position {pid}: Redis {p_red} PostgreSQL {p_row} "
                "(user instrument side qty N_e M status seq)"
            )

    c = report.check("instrument skew = Σ long - Σ short (PG rows)")
    if quiet:
        for iid, (_index, skew, _status, lng, sht) in sorted(pg.instruments.items()):
            c.checked += 1
            lu, su = pg.open_interest.get(iid, (lng, sht))
            if (skew, lu, su) != (lng - sht, lng, sht):
                c.fail(
                    f"instrument {iid}: skew/long/short columns {skew}/{lu}/{su}, "
                    f"open positions {lng - sht}/{lng}/{sht}"
                )
    else:
        c.note = skipped_note

    c = report.check("instruments: Redis = PostgreSQL (skew, long, short, index, status)")
    if quiet:
        for iid, (index, _skew, status, lng, sht) in sorted(pg.instruments.items()):
            hot_i = red.instruments.get(iid)
            if hot_i is None:
                c.skipped += 1  # not hot yet (loaded at start or by the rebuild)
                continue
            c.checked += 1
            want = (index, lng - sht, lng, sht, status)
            if hot_i != want:
                c.fail(f"instrument {iid}: Redis (index skew long short status) {hot_i}, PostgreSQL {want}")
    else:
        c.note = skipped_note

    c = report.check("instrument skew = Σ open positions (Redis)")
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for _pid, (_u, iid, side, qty, _en, _m, status, _seq) in red.positions.items():
        if status == "open":
            sums[iid][0 if side == "long" else 1] += qty
    for iid, hot_i in sorted(red.instruments.items()):
        if hot_i is None:
            continue
        c.checked += 1
        _ix, skew, lng, sht, _status = hot_i
        if skew != lng - sht:
            c.fail(f"instrument {iid}: Redis skew {skew} but long {lng} - short {sht} = {lng - sht}")
        elif quiet and [lng, sht] != sums.get(iid, [0, 0]):
            got = sums.get(iid, [0, 0])
            c.fail(f"instrument {iid}: Redis long/short {lng}/{sht}, open position hashes {got[0]}/{got[1]}")

    c = report.check("ledger references (trade -> user, position, instrument; position -> user, instrument)")
    c.checked = pg.trades_total
    for line in pg.dangling:
        c.fail(line)

    c = report.check("no dead letters (outbox entries that could not be written)")
    for line in red.dead_letters:
        c.fail(line)

    if not report.drained:
        c = report.check("outbox drained")
        c.fail(
            "trades at or below the watermark are still in the outbox or not yet folded: "
            "is the flusher running?"
        )


async def audit(stores: Stores, *, wait_s: float = 30.0, attempts: int = 3) -> AuditReport:
    """Run every check; see the module docstring for how the flusher's lag is handled."""
    t0 = time.monotonic()
    deadline = t0 + wait_s
    report = AuditReport()
    k = stores.keys
    for attempt in range(1, attempts + 1):
        report = AuditReport(attempts=attempt)
        report.watermark = _int(await stores.redis.hget(k.seq, "trade")) or 0
        report.drained, _ = await _wait_flushed(stores, report.watermark, deadline)
        async with stores.pg.connection() as conn:
            cur = await conn.execute("SELECT id FROM users ORDER BY id")
            users = [int(r[0]) for r in await cur.fetchall()]
            cur = await conn.execute("SELECT id FROM instruments ORDER BY id")
            instruments = [int(r[0]) for r in await cur.fetchall()]
            cur = await conn.execute("SELECT id FROM cfd_positions WHERE status = 'open'")
            pg_open = [int(r[0]) for r in await cur.fetchall()]
        positions_before = _int(await stores.redis.hget(k.seq, "position")) or 0
        red = await _snapshot_redis(stores, users, instruments, pg_open)
        pg = await _snapshot_pg(stores, report.watermark, red.positions)
        after = _int(await stores.redis.hget(k.seq, "trade")) or 0
        report.quiet = (
            red.trade_counter == report.watermark == after
            and pg.max_trade <= report.watermark
            and red.position_counter == positions_before
            and red.dirty == 0
        )
        if report.quiet or not report.drained or attempt == attempts:
            _checks(report, red, pg, users)
            break
        await asyncio.sleep(0.2)  # trading went on: give it a moment to pause, then retry
    report.seconds = time.monotonic() - t0
    return report


# ---------------------------------------------------------------------------------------------
# Finding the embedded servers of a running ``ftl dev``


def embedded_urls(data_dir: Path) -> tuple[str, str] | None:
    """The Redis and PostgreSQL URLs of the embedded servers a running ftl keeps in ``data_dir``.

    PostgreSQL's port is in ``pgdata/postmaster.pid``; redis-server runs with its working
    directory set to ``data_dir/redis`` (Linux ``/proc``). None when either is not running.
    """
    root = data_dir.resolve()
    try:
        pg_port = int((root / "pgdata" / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None
    redis_dir = str(root / "redis")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "cwd") != redis_dir:
                continue
            words = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        if not words or not words[0].endswith("redis-server"):
            continue
        # redis-server retitles itself "redis-server 127.0.0.1:PORT"; else it still has --port
        port = words[words.index("--port") + 1] if "--port" in words[:-1] else words[-1].rpartition(":")[2]
        if port.isdigit():
            return f"redis://127.0.0.1:{port}/0", f"postgresql://postgres@127.0.0.1:{pg_port}/ftl"
    return None
