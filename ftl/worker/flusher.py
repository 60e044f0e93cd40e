"""The flusher loop: settle the trade outbox, fold the ledger's aggregates, drain the dirty set.

Outbox: a consumer group on the stream. The api writes each trade itself; the flusher writes the
entries PostgreSQL does not have yet (the api died or answered 503) with the same fenced, chained
statement (ledger.py), and acknowledges (and deletes) an entry once PostgreSQL has it. Entries a
dead consumer left pending are claimed after ``claim_idle_ms``. Poison is isolated: an entry that
cannot be parsed, or that fails for a non-transient reason ``max_tries`` times, moves to the
dead-letter stream ``outbox:dead`` with its reason; the rest of its batch is written. Transient
errors (connection lost, timeouts) fail the pass, which is retried with backoff.

Fold: trades in ``ledger_pending`` are folded into the house wallet and the instruments' open
interest, exactly once (ledger.fold_pending).

Dirty set: renamed atomically to a processing set, so marks made while a batch is written go
into a fresh set and are never lost; rows only move forward (guarded by the trade sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from typing import Any

import psycopg
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge, Histogram
from redis.exceptions import RedisError, ResponseError

from ftl import logs
from ftl.persistence import ledger
from ftl.persistence.leader import LeaderLock
from ftl.persistence.ledger import Outcome
from ftl.persistence.recovery import ensure_hot_state
from ftl.persistence.stores import Stores
from ftl.trading.leaderboard import TieBreak
from ftl.worker.marks import Marks

log = logs.get(__name__)

GROUP = "flusher"
BUSY_WAIT_S = 0.01  # between passes while there is work (a pass batches what came meanwhile)
SLOW_PART_S = 0.25  # the dirty set and the lag gauge at most this often from the loop

FLUSH_SECONDS = Histogram("ftl_flush_batch_seconds", "Duration of one flush pass", ["part"])
FLUSH_BATCH = Histogram(
    "ftl_flush_batch_size",
    "Entries written per flush pass",
    ["part"],
    buckets=(0, 1, 10, 50, 100, 500, 1000, 5000),
)
OUTBOX_BACKLOG = Gauge("ftl_outbox_backlog", "Trade outbox entries not yet acknowledged")
FLUSH_LAG = Gauge(
    "ftl_flush_lag_seconds",
    "Age of the oldest trade whose outbox entry is not settled or whose aggregates are not folded",
)
DEAD_LETTERS = Counter(
    "ftl_outbox_dead_letters_total", "Outbox entries moved to the dead-letter stream", ["reason"]
)
FENCED = Counter(
    "ftl_outbox_fenced_total", "Outbox entries of an earlier Redis incarnation, dropped unrecorded"
)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass
class FlushStats:
    trades: int = 0  # outbox entries settled (acknowledged)
    new_trades: int = 0  # of which written by the flusher
    dead: int = 0  # moved to the dead-letter stream
    folded: int = 0  # pending trades folded into the aggregates
    dirty: int = 0


async def unsettled_age_s(stores: Stores) -> float:
    """Age of the oldest trade whose outbox entry is not settled or whose aggregates are not
    folded yet (0 when there is none)."""
    now = time.time()
    oldest = now
    first = await stores.redis.xrange(stores.keys.outbox, count=1)
    if first:
        oldest = min(oldest, int(_text(first[0][0]).split("-")[0]) / 1000)
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT extract(epoch FROM t.created_at) FROM trades t "
            "WHERE t.id = (SELECT min(trade_id) FROM ledger_pending)"
        )
        row = await cur.fetchone()
    if row and row[0] is not None:
        oldest = min(oldest, float(row[0]))
    return max(0.0, now - oldest)


class Flusher:
    def __init__(
        self,
        stores: Stores,
        *,
        batch: int = 2000,
        claim_idle_ms: int = 5000,
        consumer: str | None = None,
        marks: Marks | None = None,
    ) -> None:
        self.stores = stores
        self.keys = stores.keys
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self.consumer = consumer or f"{socket.gethostname()}-{id(self):x}"
        self.max_tries = stores.settings.flusher_max_tries
        self._tries: dict[str, int] = {}  # outbox entry id -> failed writes so far
        self._slow_at = 0.0
        self._idle = asyncio.Event()
        self._idle.set()
        self._group_ready = False
        # Leaderboards, mark-to-market and liquidation sweep (ftl/worker/marks.py).
        s = stores.settings
        self.marks = (
            marks
            if marks is not None
            else Marks(
                stores,
                mtm_interval_s=s.mtm_interval_s,
                snapshot_interval_s=s.snapshot_interval_s,
                snapshot_top=s.snapshot_top,
                tie_break=TieBreak(epoch_ms=s.leaderboard_epoch_ms, slot_ms=s.leaderboard_slot_ms),
            )
        )
        self.marks.idle = self._idle

    @property
    def redis(self) -> aioredis.Redis:
        return self.stores.redis

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.outbox, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def flush_once(self, force_all: bool = True) -> FlushStats:
        """One pass: own pending, claimed and new outbox entries; the fold; the dirty set (and
        the lag gauge) unless they ran less than SLOW_PART_S ago and not ``force_all``."""
        self._idle.clear()  # the marks' long passes give way meanwhile
        try:
            return await self._flush_once(force_all)
        finally:
            self._idle.set()

    async def _flush_once(self, force_all: bool) -> FlushStats:
        stats = FlushStats()
        if not self._group_ready:
            await self.ensure_group()
        t0 = time.perf_counter()
        now = time.monotonic()
        slow = force_all or now - self._slow_at >= SLOW_PART_S
        entries: list[tuple[str, Any]] = []
        if slow or self._tries:  # own entries left by a failed pass or waiting for a gap
            entries += await self._read_mine()
        if slow:  # entries a dead consumer left (idle >= claim_idle_ms)
            entries += await self._claim()
        entries += await self._read_new()
        if entries:
            await self._settle(list(dict(entries).items()), stats)
        async with self.stores.ledger_pg.connection() as conn:
            stats.folded = await ledger.fold_pending(conn)
        FLUSH_SECONDS.labels("outbox").observe(time.perf_counter() - t0)
        FLUSH_BATCH.labels("outbox").observe(stats.trades)
        # Index, status and the lag gauge need no 10 ms freshness: under load (passes back to
        # back) they run every SLOW_PART_S, which saves PostgreSQL a few statements a pass.
        if slow:
            self._slow_at = now
            t1 = time.perf_counter()
            stats.dirty = await self._flush_dirty()
            FLUSH_SECONDS.labels("dirty").observe(time.perf_counter() - t1)
            FLUSH_BATCH.labels("dirty").observe(stats.dirty)
            await self._observe_lag()
        return stats

    async def _settle(self, entries: list[tuple[str, Any]], stats: FlushStats) -> None:
        """Write what PostgreSQL lacks; acknowledge what it has; dead-letter the poison."""
        fields_of = dict(entries)
        rows: dict[str, dict[str, Any]] = {}
        dead: list[tuple[str, Any, str]] = []
        for eid, fields in entries:
            try:
                rows[eid] = ledger.params(fields)
            except ledger.EntryError as exc:
                dead.append((eid, fields, str(exc)))
        done: list[str] = []
        if rows:
            async with self.stores.ledger_pg.connection() as conn:
                cur = await conn.execute(
                    "SELECT id FROM trades WHERE id = ANY(%s)", ([r["trade_id"] for r in rows.values()],)
                )
                have = {int(i) for (i,) in await cur.fetchall()}
                todo = [r for r in rows.values() if r["trade_id"] not in have]
                outcomes = await ledger.write_each(conn, self.keys.prefix, todo)
            for eid, row in rows.items():
                result = Outcome.PRESENT if row["trade_id"] in have else outcomes.get(row["trade_id"])
                if result is Outcome.WRITTEN:
                    stats.new_trades += 1
                if isinstance(result, Outcome) and result.confirmed:
                    done.append(eid)
                elif result is Outcome.FENCED:
                    FENCED.inc()
                    log.warning("outbox entry of an earlier Redis dropped", trade_id=row["trade_id"])
                    done.append(eid)
                elif result in (Outcome.CONFLICT, Outcome.COLLISION):
                    dead.append((eid, fields_of[eid], str(result)))
                else:  # GAP, or a data error: again next pass, until max_tries
                    tries = self._tries.get(eid, 0) + 1
                    self._tries[eid] = tries
                    if tries >= self.max_tries:
                        reason = "predecessor_missing" if result is Outcome.GAP else repr(result)
                        dead.append((eid, fields_of[eid], reason))
            # Leaderboards and the liquidation index follow every settled trade (before the ack:
            # retried with it).
            await self.marks.track([fields_of[eid] for eid in done])
        if dead:
            await self._dead_letter(dead)
        acked = done + [eid for eid, _, _ in dead]
        if acked:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(self.keys.outbox, GROUP, *acked)
            pipe.xdel(self.keys.outbox, *acked)
            await pipe.execute()
            for eid in acked:
                self._tries.pop(eid, None)
        stats.trades = len(done)
        stats.dead = len(dead)

    async def _dead_letter(self, dead: list[tuple[str, Any, str]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for eid, fields, reason in dead:
            body: dict[str, str] = {"reason": reason[:500], "entry_id": eid}
            for k, v in dict(fields or {}).items():
                body[f"f:{_text(k)}"] = _text(v)
            pipe.xadd(self.keys.outbox_dead, body)  # type: ignore[arg-type]
            label = (
                reason
                if reason in ("conflict", "collision", "predecessor_missing")
                else ("unparseable" if reason.startswith("unparseable") else "write_failed")
            )
            DEAD_LETTERS.labels(label).inc()
            log.error("outbox entry moved to the dead-letter stream", entry_id=eid, reason=reason)
        await pipe.execute()

    async def _read_mine(self) -> list[tuple[str, dict[Any, Any]]]:
        """This consumer's own pending entries (left by a failed pass or waiting for a gap)."""
        return await self._read("0")

    async def _read_new(self) -> list[tuple[str, dict[Any, Any]]]:
        return await self._read(">")

    async def _read(self, start: str) -> list[tuple[str, dict[Any, Any]]]:
        try:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, {self.keys.outbox: start}, count=self.batch
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost its state; the group comes back
                self._group_ready = False
                return []
            raise
        out: list[tuple[str, dict[Any, Any]]] = []
        gone: list[str] = []  # pending but deleted (acknowledged by no one): settle them
        streams: list[Any] = list(reply or [])
        for stream in streams:
            for eid, fields in stream[1]:
                (out.append((_text(eid), fields)) if fields else gone.append(_text(eid)))
        if gone:
            await self.redis.xack(self.keys.outbox, GROUP, *gone)
        return out

    async def _claim(self) -> list[tuple[str, dict[Any, Any]]]:
        try:
            reply = await self.redis.xautoclaim(
                self.keys.outbox,
                GROUP,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id="0-0",
                count=self.batch,
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                self._group_ready = False
                return []
            raise
        items = reply[1] if len(reply) > 1 else []
        return [(_text(eid), fields) for eid, fields in items if fields]

    async def _observe_lag(self) -> None:
        try:
            info = await self.redis.xpending(self.keys.outbox, GROUP)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # Redis lost its state during the pass
            info = {}
        pending = int(info.get("pending", 0)) if isinstance(info, dict) else 0
        length = int(await self.redis.xlen(self.keys.outbox))
        OUTBOX_BACKLOG.set(max(length, pending))
        FLUSH_LAG.set(await unsettled_age_s(self.stores))

    async def _flush_dirty(self) -> int:
        processing = self.keys.dirty + ":processing"
        # A processing set left by a crashed pass is finished first; else take the current one.
        if not await self.redis.exists(processing):
            try:
                await self.redis.rename(self.keys.dirty, processing)
            except ResponseError:  # no such key: nothing dirty
                return 0
        members = [_text(m) for m in await self.redis.smembers(processing)]
        instruments = sorted(int(m[2:]) for m in members if m.startswith("i:"))
        if instruments:
            await self._write_instruments(instruments)
        await self.redis.delete(processing)
        return len(members)

    async def _write_instruments(self, instruments: list[int]) -> None:
        """Index, status and publish sequence from Redis.

        Wallet and position rows are written only with their trade (ledger.py), and the skew and
        open interest only by the fold, never from the hot hashes: a hash may reflect a trade
        still in the outbox, which a Redis loss would take away while the row kept its effect.
        """
        pipe = self.redis.pipeline(transaction=False)
        for iid in instruments:
            pipe.hmget(self.keys.instrument(iid), "index", "index_ts", "status", "pseq")
        hot = await pipe.execute()
        rows = [
            (int(h[0]), int(h[1] or 0), _text(h[2] or b"open"), int(h[3] or 0), iid)
            for iid, h in zip(instruments, hot, strict=True)
            if h[0] is not None
        ]
        if not rows:
            return
        async with self.stores.pg.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(ledger.FOLD_LOCK)  # instrument rows: one writer at a time, id order
            await cur.executemany(
                "UPDATE instruments SET index_price = %s, index_ts = to_timestamp(%s / 1000.0), "
                "status = %s, pseq = greatest(pseq, %s), updated_at = now() WHERE id = %s",
                rows,
            )

    async def run(self, stop: asyncio.Event, interval_s: float = 0.15) -> None:
        """Flush every ``interval_s`` until ``stop``; errors are logged and retried."""
        rebuild_lock = LeaderLock(self.stores.scripts, self.keys, "rebuild", ttl_ms=120_000)
        # Sweeps and mark-to-market run beside the flush loop: a long pass (the first after a
        # rebuild) must not hold back the outbox drain.
        sweeps = asyncio.create_task(self._sweep_loop(stop, interval_s))
        try:
            failures = 0
            while not stop.is_set():
                busy = False
                try:
                    await ensure_hot_state(self.stores, rebuild_lock)
                    stats = await self.flush_once(force_all=False)
                    busy = bool(stats.trades or stats.folded or stats.dead)
                    failures = 0
                except (RedisError, psycopg.Error, OSError) as exc:
                    failures += 1  # transient (a server down, a timeout): back off, then retry
                    log.warning("flush pass failed; retrying", error=repr(exc), failures=failures)
                # Under load the next pass follows at once (lag = one pass); idle, every interval.
                wait = min(interval_s, BUSY_WAIT_S) if busy else interval_s
                if failures:
                    wait = min(interval_s * 2**failures, 5.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sweeps), 3.0)
            sweeps.cancel()

    async def _sweep_loop(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                if await self.redis.exists(self.keys.boot_marker):
                    await self.marks.tick()  # liquidations; mark-to-market, snapshots when due
            except (RedisError, psycopg.Error, OSError) as exc:
                log.warning("sweep pass failed; retrying", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
