"""Rebuild Redis hot state from PostgreSQL after Redis lost it (crash, failover, flush).

PostgreSQL holds every confirmed trade and, per wallet and position, the row as of its last
trade (``seq``). The rebuild first *fences* the lost incarnation: it raises the prefix's epoch in
PostgreSQL before it reads anything, so no write of a trade the lost Redis ran can land after
(ledger.new_epoch). It then folds every pending trade and repairs the aggregates (ledger
.repair_aggregates), so PostgreSQL is consistent too, and loads instruments (their index
timestamps kept), wallets, open positions, id counters, leaderboards and the idempotency keys of
recent trades; last it sets the boot marker to the new epoch. The trade scripts refuse to trade
(``recovering``) while the marker is missing. The rebuild lock is renewed while it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftl import logs
from ftl.persistence import ledger
from ftl.persistence.leader import LeaderLock
from ftl.persistence.lua_scripts import LuaScripts, RebuildMode
from ftl.persistence.stores import Stores

log = logs.get(__name__)

PSEQ_JUMP = 1000  # publishes since the last flush were lost: jump ahead so clients see a gap
IDEMPOTENCY_WINDOW_S = 24 * 3600
CHUNK = 5000
ID_GAP = 1_000_000  # ids skipped after a rebuild (bigint ids: about 9e12 rebuilds of room)


@dataclass
class RebuildReport:
    instruments: int = 0
    wallets: int = 0
    positions: int = 0
    idempotency_keys: int = 0
    epoch: int = 0
    folded: int = 0
    repaired: tuple[int, int] = (0, 0)  # instruments, house wallet corrected by the repair
    seconds: float = 0.0


async def hot_state_present(stores: Stores) -> bool:
    return bool(await stores.redis.exists(stores.keys.boot_marker))


_INSTRUMENT_FIELDS = ("index", "index_ts", "skew", "depth", "cap", "status", "long", "short", "pseq")
_WALLET_FIELDS = ("available", "locked", "equity", "seq", "district")
_POSITION_FIELDS = (
    "user", "instrument", "side", "qty", "entry_price", "entry_notional", "margin", "leverage",
    "status", "realised_pnl", "seq", "opened_ts",
)  # fmt: skip
# Every column as text ('' for NULL): the rows go to Redis as they are, in one MessagePack blob.
_INSTRUMENTS = """
SELECT i.id::text, i.index_price::text, (extract(epoch FROM i.index_ts) * 1000)::bigint::text,
       (coalesce(o.lng, 0) - coalesce(o.sht, 0))::text, i.depth::text, i.skew_cap::text, i.status,
       coalesce(o.lng, 0)::text, coalesce(o.sht, 0)::text, (i.pseq + %(jump)s)::text
FROM instruments i LEFT JOIN (
    SELECT instrument_id, sum(qty) FILTER (WHERE side = 'long') AS lng,
           sum(qty) FILTER (WHERE side = 'short') AS sht
    FROM cfd_positions WHERE status = 'open' GROUP BY instrument_id) o ON o.instrument_id = i.id
"""  # skew = long units - short units, recomputed from the open positions

_WALLETS = """
SELECT w.user_id::text, w.available::text, w.locked::text, (w.available + w.locked)::text,
       w.seq::text, coalesce(u.district_id::text, '')
FROM wallets w JOIN users u ON u.id = w.user_id
"""

_POSITIONS = """
SELECT id::text, user_id::text, instrument_id::text, side, qty::text, entry_price::text,
       entry_notional::text, margin::text, leverage::text, status, realised_pnl::text, seq::text,
       (extract(epoch FROM opened_at) * 1000)::bigint::text
FROM cfd_positions WHERE status = 'open'
"""

_IDEMPOTENCY = f"""
SELECT t.user_id::text, t.idempotency_key, t.request_hash,
       ((extract(epoch FROM t.created_at) * 1000)::bigint + %(window)s * 1000)::text,
       {ledger.ENTRY_COLUMNS}
FROM trades t {ledger.ENTRY_JOINS}
WHERE t.idempotency_key IS NOT NULL AND t.request_hash IS NOT NULL
  AND t.created_at > now() - make_interval(secs => %(window)s)
"""  # noqa: S608 (only constant SQL parts are interpolated)


async def _load(
    stores: Stores,
    conn: Any,
    sql: str,
    args: dict[str, Any],
    mode: RebuildMode,
    prefix: str,
    names: Sequence[str],
) -> int:
    """Stream the rows of ``sql`` into Redis through ``rebuild_load.lua``, a chunk per call.

    Fetching the next chunk overlaps with packing and loading the previous one.
    """
    lua = LuaScripts(stores.scripts, stores.keys)
    loaded = 0
    pending: asyncio.Future[int] | None = None
    try:
        async with conn.cursor(name=f"rebuild_{mode}") as cur:
            await cur.execute(sql, args)
            while rows := await cur.fetchmany(CHUNK):
                if pending is not None:
                    loaded += await pending
                pending = asyncio.ensure_future(lua.rebuild_load(mode, prefix, names, rows))
        if pending is not None:
            loaded += await pending
            pending = None
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
    return loaded


async def rebuild(stores: Stores) -> RebuildReport:
    """Load every hot key from PostgreSQL; the caller holds the rebuild lock."""
    t0 = time.perf_counter()
    report = RebuildReport()
    keys = stores.keys
    r = stores.redis
    await stores.scripts.load_all()
    # Fence first: from here on no write of the lost incarnation lands; then fold and repair the
    # aggregates, so what is read below (and PostgreSQL itself) is consistent.
    async with stores.pg.connection() as conn:
        report.epoch = await ledger.new_epoch(conn, keys.prefix)
        report.folded = await ledger.fold_all(conn)
        report.repaired = await ledger.repair_aggregates(conn)
    if report.repaired != (0, 0):
        log.warning("rebuild repaired PostgreSQL aggregates", instruments=report.repaired[0],
                    house=report.repaired[1])  # fmt: skip
    # One snapshot for every query (named cursors need a transaction anyway).
    async with stores.pg.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        report.instruments = await _load(
            stores, conn, _INSTRUMENTS, {"jump": PSEQ_JUMP}, "hashes",
            keys.instrument(""), _INSTRUMENT_FIELDS,
        )  # fmt: skip
        report.wallets = await _load(stores, conn, _WALLETS, {}, "wallets", keys.wallet(""), _WALLET_FIELDS)
        report.positions = await _load(
            stores, conn, _POSITIONS, {}, "hashes", keys.position(""), _POSITION_FIELDS
        )
        # Id counters continue after the largest ids PostgreSQL has.
        cur = await conn.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM trades), "
            "(SELECT coalesce(max(id), 0) FROM cfd_positions)"
        )
        row = await cur.fetchone()
        assert row is not None
        # A gap: a trade done on the lost Redis may still be on its way into PostgreSQL (the
        # api's write after its Lua call); its id must not be handed out a second time.
        await r.hset(keys.seq, mapping={"trade": row[0] + ID_GAP, "position": row[1] + ID_GAP})
        # Idempotency keys of recent trades: a retry returns the first answer, never a 2nd
        # trade. Position and wallet figures in that reply are today's rows (Redis lost the
        # ones of the moment); their sequence numbers keep a re-persist of the entry from
        # moving any row backwards.
        report.idempotency_keys = await _load(
            stores, conn, _IDEMPOTENCY, {"window": IDEMPOTENCY_WINDOW_S}, "idempotency",
            keys.idempotency("", "")[:-1], ledger.ENTRY_FIELDS,
        )  # fmt: skip

    await r.set(keys.boot_marker, str(report.epoch))
    report.seconds = time.perf_counter() - t0
    return report


async def ensure_hot_state(stores: Stores, lock: LeaderLock) -> RebuildReport | None:
    """Rebuild if the boot marker is missing and this process wins the rebuild lock."""
    if await hot_state_present(stores):
        return None
    if not await lock.acquire():
        return None
    renew = asyncio.create_task(_renew(lock))
    try:
        if await hot_state_present(stores):
            return None
        log.warning("Redis lost its hot state; rebuilding from PostgreSQL")
        report = await rebuild(stores)
        log.info(
            "hot state rebuilt",
            epoch=report.epoch,
            instruments=report.instruments,
            wallets=report.wallets,
            positions=report.positions,
            idempotency_keys=report.idempotency_keys,
            folded=report.folded,
            seconds=round(report.seconds, 3),
        )
        return report
    finally:
        renew.cancel()
        await lock.release()


async def _renew(lock: LeaderLock) -> None:
    """Keep the rebuild lock while the rebuild runs (a long one outlives the lock's TTL)."""
    while True:
        await asyncio.sleep(lock.ttl_ms / 3000)
        try:
            held = await lock.acquire()
        except Exception as exc:  # Redis gone again: the rebuild itself fails and is retried
            log.warning("could not renew the rebuild lock", error=repr(exc))
            return
        if not held:
            log.error("the rebuild lock was lost while rebuilding")
            return
