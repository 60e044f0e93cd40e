"""Rebuild Redis hot state from PostgreSQL after Redis lost it (crash, failover, flush).

PostgreSQL holds every confirmed trade and, per wallet and position, the row as of its last
trade (``seq``). The rebuild loads instruments (skew recomputed from open positions), wallets,
open positions, id counters, leaderboards and the idempotency keys of recent trades, then sets
the boot marker; the trade scripts refuse to trade (``recovering``) while the marker is missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import msgpack

from ftl import logs
from ftl.persistence.leader import LeaderLock
from ftl.stores import Stores

log = logs.get(__name__)

PSEQ_JUMP = 1000  # publishes since the last flush were lost: jump ahead so clients see a gap
IDEMPOTENCY_WINDOW_S = 24 * 3600
CHUNK = 5000


@dataclass
class RebuildReport:
    instruments: int = 0
    wallets: int = 0
    positions: int = 0
    idempotency_keys: int = 0
    seconds: float = 0.0


async def hot_state_present(stores: Stores) -> bool:
    return bool(await stores.redis.exists(stores.keys.boot_marker))


async def _flush_pipe(pipe: Any, count: int) -> int:
    await pipe.execute()
    return count


async def rebuild(stores: Stores) -> RebuildReport:
    """Load every hot key from PostgreSQL; the caller holds the rebuild lock."""
    t0 = time.perf_counter()
    report = RebuildReport()
    keys = stores.keys
    r = stores.redis
    await stores.scripts.load_all()
    now_ms = int(time.time() * 1000)
    async with stores.pg.connection() as conn:
        # Instruments: skew from open positions (invariant: skew = long units - short units).
        cur = await conn.execute(
            "SELECT i.id, i.index_price, (extract(epoch FROM i.index_ts) * 1000)::bigint, "
            "i.depth, i.skew_cap, i.status, i.pseq, "
            "coalesce(sum(p.qty) FILTER (WHERE p.side = 'long'), 0)::bigint, "
            "coalesce(sum(p.qty) FILTER (WHERE p.side = 'short'), 0)::bigint "
            "FROM instruments i LEFT JOIN cfd_positions p "
            "ON p.instrument_id = i.id AND p.status = 'open' GROUP BY i.id"
        )
        pipe = r.pipeline(transaction=False)
        for iid, index, index_ts, depth, cap, status, pseq, lng, sht in await cur.fetchall():
            pipe.hset(keys.instrument(iid), mapping={
                "index": index, "index_ts": max(int(index_ts), now_ms), "skew": lng - sht,
                "depth": depth, "cap": cap, "status": status, "long": lng, "short": sht,
                "pseq": int(pseq) + PSEQ_JUMP,
            })  # fmt: skip
            report.instruments += 1
        await pipe.execute()

        # Wallets (the house too) and leaderboards.
        cur = await conn.execute(
            "SELECT w.user_id, w.available, w.locked, w.seq, u.district_id "
            "FROM wallets w JOIN users u ON u.id = w.user_id"
        )
        pipe = r.pipeline(transaction=False)
        n = 0
        async for uid, available, locked, seq, district in cur:
            equity = available + locked
            pipe.hset(keys.wallet(uid), mapping={
                "available": available, "locked": locked, "equity": equity, "seq": seq,
                "district": "" if district is None else district,
            })  # fmt: skip
            if uid != 0:
                pipe.zadd(keys.leaderboard_overall, {str(uid): equity})
                if district is not None:
                    pipe.zadd(keys.leaderboard_district(district), {str(uid): equity})
            n += 1
            if n % CHUNK == 0:
                await pipe.execute()
                pipe = r.pipeline(transaction=False)
        await pipe.execute()
        report.wallets = n

        # Open positions.
        cur = await conn.execute(
            "SELECT id, user_id, instrument_id, side, qty, entry_price, entry_notional, margin, "
            "leverage, status, realised_pnl, seq, (extract(epoch FROM opened_at) * 1000)::bigint "
            "FROM cfd_positions WHERE status = 'open'"
        )
        pipe = r.pipeline(transaction=False)
        n = 0
        async for pid, uid, iid, side, qty, ep, en, margin, lev, status, rp, seq, opened in cur:
            pipe.hset(keys.position(pid), mapping={
                "user": uid, "instrument": iid, "side": side, "qty": qty, "entry_price": ep,
                "entry_notional": en, "margin": margin, "leverage": lev, "status": status,
                "realised_pnl": rp, "seq": seq, "opened_ts": opened,
            })  # fmt: skip
            n += 1
            if n % CHUNK == 0:
                await pipe.execute()
                pipe = r.pipeline(transaction=False)
        await pipe.execute()
        report.positions = n

        # Id counters continue after the largest ids PostgreSQL has.
        cur = await conn.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM trades), "
            "(SELECT coalesce(max(id), 0) FROM cfd_positions)"
        )
        row = await cur.fetchone()
        assert row is not None
        await r.hset(keys.seq, mapping={"trade": row[0], "position": row[1]})

        # Idempotency keys of recent trades: a retry returns the first answer, never a 2nd trade.
        cur = await conn.execute(
            "SELECT t.user_id, t.idempotency_key, t.request_hash, "
            "(extract(epoch FROM t.created_at) * 1000)::bigint + %s * 1000, "
            "t.id, t.kind, t.position_id, t.instrument_id, t.side, t.qty, t.price, t.notional, "
            "t.fee, t.margin, t.realised_pnl, t.payout, t.leverage, t.index_price, t.skew_after, "
            "(extract(epoch FROM t.created_at) * 1000)::bigint, "
            "p.qty, p.entry_price, p.entry_notional, p.margin, p.realised_pnl, p.status, p.seq, "
            "(extract(epoch FROM p.opened_at) * 1000)::bigint, "
            "(extract(epoch FROM p.closed_at) * 1000)::bigint, w.available, w.locked, h.available "
            "FROM trades t JOIN cfd_positions p ON p.id = t.position_id "
            "JOIN wallets w ON w.user_id = t.user_id JOIN wallets h ON h.user_id = 0 "
            "WHERE t.idempotency_key IS NOT NULL AND t.request_hash IS NOT NULL "
            "AND t.created_at > now() - make_interval(secs => %s)",
            (IDEMPOTENCY_WINDOW_S, IDEMPOTENCY_WINDOW_S),
        )
        pipe = r.pipeline(transaction=False)
        n = 0
        async for row in cur:
            key = keys.idempotency(row[0], row[1])
            pipe.hset(
                key,
                mapping={"hash": row[2], "reply": _reply(row[0], row[1], row[2], row[4:]), "trade": row[4]},
            )
            pipe.pexpireat(key, int(row[3]))
            n += 1
            if n % CHUNK == 0:
                await pipe.execute()
                pipe = r.pipeline(transaction=False)
        await pipe.execute()
        report.idempotency_keys = n

    await r.set(keys.boot_marker, str(now_ms))
    report.seconds = time.perf_counter() - t0
    return report


_ENTRY_FIELDS = (
    "trade_id", "kind", "position_id", "instrument_id", "side", "qty", "price", "notional", "fee",
    "margin", "realised_pnl", "payout", "leverage", "index_price", "skew_after", "ts",
    "pos_qty", "pos_entry_price", "pos_entry_notional", "pos_margin", "pos_realised_pnl",
    "pos_status", "pos_seq", "pos_opened_ts", "pos_closed_ts", "w_available", "w_locked",
    "house_available",
)  # fmt: skip


def _reply(user_id: int, idempotency_key: str, request_hash: str, values: Sequence[Any]) -> bytes:
    """The first reply of a trade as the scripts store it: a MessagePack array of strings,
    ``ok, replay, mark, m`` then the trade's outbox entry.

    Position and wallet figures are today's rows (Redis lost the ones of the moment); their
    sequence numbers keep a re-persist of this entry from moving any row backwards.
    """
    entry = dict(zip(_ENTRY_FIELDS, values, strict=True))
    entry["user_id"] = user_id
    entry["idempotency_key"] = idempotency_key
    entry["request_hash"] = request_hash
    fields: list[str] = ["ok", "0", "mark", str(entry["price"])]
    for name, value in entry.items():
        fields += [name, "" if value is None else str(value)]
    packed: bytes = msgpack.packb(fields)
    return packed


async def ensure_hot_state(stores: Stores, lock: LeaderLock) -> RebuildReport | None:
    """Rebuild if the boot marker is missing and this process wins the rebuild lock."""
    if await hot_state_present(stores):
        return None
    if not await lock.acquire():
        return None
    try:
        if await hot_state_present(stores):
            return None
        log.warning("Redis lost its hot state; rebuilding from PostgreSQL")
        report = await rebuild(stores)
        log.info(
            "hot state rebuilt",
            instruments=report.instruments,
            wallets=report.wallets,
            positions=report.positions,
            idempotency_keys=report.idempotency_keys,
            seconds=round(report.seconds, 3),
        )
        return report
    finally:
        await lock.release()
