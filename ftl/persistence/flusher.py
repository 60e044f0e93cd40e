"""The flusher loop: drain the trade outbox and the dirty set from Redis into PostgreSQL.

Outbox: a consumer group on the stream; entries are written idempotently (by trade id) in one
transaction per batch and acknowledged (and deleted) only after the commit; entries a dead
consumer left pending are claimed after ``claim_idle_ms``.

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
from prometheus_client import Gauge, Histogram
from redis.exceptions import RedisError, ResponseError

from ftl import logs
from ftl.persistence.leader import LeaderLock
from ftl.persistence.ledger import persist_trades
from ftl.persistence.marks import Marks
from ftl.persistence.recovery import ensure_hot_state
from ftl.stores import Stores
from ftl.trading.leaderboard import TieBreak

log = logs.get(__name__)

GROUP = "flusher"

FLUSH_SECONDS = Histogram("ftl_flush_batch_seconds", "Duration of one flush pass", ["part"])
FLUSH_BATCH = Histogram(
    "ftl_flush_batch_size",
    "Entries written per flush pass",
    ["part"],
    buckets=(0, 1, 10, 50, 100, 500, 1000, 5000),
)
OUTBOX_BACKLOG = Gauge("ftl_outbox_backlog", "Trade outbox entries not yet acknowledged")
FLUSH_LAG = Gauge("ftl_flush_lag_seconds", "Age of the oldest trade not yet in PostgreSQL")


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass
class FlushStats:
    trades: int = 0
    new_trades: int = 0
    dirty: int = 0


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
        self._group_ready = False
        # Leaderboards, mark-to-market and liquidation sweep (ftl/persistence/marks.py).
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

    async def flush_once(self) -> FlushStats:
        """One pass: claimed and new outbox entries, then the dirty set."""
        stats = FlushStats()
        if not self._group_ready:
            await self.ensure_group()
        t0 = time.perf_counter()
        entries = await self._claim() + await self._read_new()
        if entries:
            ids = [eid for eid, _ in entries]
            async with self.stores.pg.connection() as conn:
                stats.new_trades = await persist_trades(conn, [fields for _, fields in entries])
            await self.marks.track([fields for _, fields in entries])  # before the ack: retried
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(self.keys.outbox, GROUP, *ids)
            pipe.xdel(self.keys.outbox, *ids)
            await pipe.execute()
            stats.trades = len(entries)
        FLUSH_SECONDS.labels("outbox").observe(time.perf_counter() - t0)
        FLUSH_BATCH.labels("outbox").observe(stats.trades)
        t1 = time.perf_counter()
        stats.dirty = await self._flush_dirty()
        FLUSH_SECONDS.labels("dirty").observe(time.perf_counter() - t1)
        FLUSH_BATCH.labels("dirty").observe(stats.dirty)
        await self._observe_lag()
        return stats

    async def _read_new(self) -> list[tuple[str, dict[Any, Any]]]:
        try:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, {self.keys.outbox: ">"}, count=self.batch
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost its state; the group comes back
                self._group_ready = False
                return []
            raise
        out: list[tuple[str, dict[Any, Any]]] = []
        streams: list[Any] = list(reply or [])
        for stream in streams:
            out.extend((_text(eid), fields) for eid, fields in stream[1] if fields)
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
        info = await self.redis.xpending(self.keys.outbox, GROUP)
        pending = int(info.get("pending", 0)) if isinstance(info, dict) else 0
        length = int(await self.redis.xlen(self.keys.outbox))
        OUTBOX_BACKLOG.set(max(length, pending))
        first = await self.redis.xrange(self.keys.outbox, count=1)
        if first:
            ms = int(_text(first[0][0]).split("-")[0])
            FLUSH_LAG.set(max(0.0, time.time() - ms / 1000))
        else:
            FLUSH_LAG.set(0.0)

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
        """Index, status and publish sequence from Redis; skew from PostgreSQL's open positions.

        Wallet and position rows are written only with their trade (ledger.py), never from the
        hot hashes: a hash may reflect a trade still in the outbox, which a Redis loss would take
        away while the row kept its effect. For the same reason the skew is not Redis's.
        """
        pipe = self.redis.pipeline(transaction=False)
        for iid in instruments:
            pipe.hmget(self.keys.instrument(iid), "index", "index_ts", "status", "pseq")
        hot = await pipe.execute()
        rows = [
            (int(h[0]), int(h[1] or 0), _text(h[2] or b"open"), int(h[3] or 0), iid, iid)
            for iid, h in zip(instruments, hot, strict=True)
            if h[0] is not None
        ]
        if not rows:
            return
        async with self.stores.pg.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                "UPDATE instruments SET index_price = %s, index_ts = to_timestamp(%s / 1000.0), "
                "status = %s, pseq = greatest(pseq, %s), updated_at = now(), "
                "skew = coalesce((SELECT sum(CASE side WHEN 'long' THEN qty ELSE -qty END) "
                "FROM cfd_positions WHERE instrument_id = %s AND status = 'open'), 0) "
                "WHERE id = %s",
                rows,
            )

    async def run(self, stop: asyncio.Event, interval_s: float = 0.15) -> None:
        """Flush every ``interval_s`` until ``stop``; errors are logged and retried."""
        rebuild_lock = LeaderLock(self.stores.scripts, self.keys, "rebuild", ttl_ms=120_000)
        # Sweeps and mark-to-market run beside the flush loop: a long pass (the first after a
        # rebuild) must not hold back the outbox drain.
        sweeps = asyncio.create_task(self._sweep_loop(stop, interval_s))
        try:
            while not stop.is_set():
                try:
                    await ensure_hot_state(self.stores, rebuild_lock)
                    await self.flush_once()
                except (RedisError, psycopg.Error, OSError) as exc:
                    log.warning("flush pass failed; retrying", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
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
