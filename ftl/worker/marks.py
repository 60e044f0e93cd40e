"""Mark-to-market of leaderboard equity, the liquidation sweep and scheduled leaderboard snapshots.

Run by the flusher: :meth:`Marks.track` after each outbox batch is written, :meth:`Marks.tick`
after each pass. This module holds the position index and the schedule; the passes are in
:mod:`ftl.worker.liquidation` and :mod:`ftl.worker.mark_to_market`. Redis keys of its
own (all rebuildable from PostgreSQL plus the position hashes):

| key | type | content |
|---|---|---|
| ``liq:long:{iid}``, ``liq:short:{iid}`` | zset | open position ids, scored by liquidation price |
| ``liq:instruments`` | set | instruments that have (or had) tracked positions |
| ``holdings:{userId}`` | set | the user's open position ids |
| ``liq:marks`` | hash | instrument → ``mark:status`` last swept completely |
| ``mtm:marks`` | hash | instrument → mark last used by mark-to-market |
| ``mtm:users`` | set | users whose equity must be recomputed (they traded) |
| ``liq:ready`` | string | ``{boot marker}:{mm_bps}`` the index was built for; else it is rebuilt |

(``-inf``: a long that can never be liquidated, e.g. at 1x.) Every entry is re-read from the
position hash before use, so a stale one heals itself.
A long is liquidatable at mark ``m`` iff ``m <= liq`` (up to the exact test the script makes),
a short iff ``m > liq``: :func:`ftl.trading.amm.liquidation_price` floors the threshold.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ftl import logs
from ftl.persistence.stores import Stores
from ftl.persistence.trade_scripts import TradingConfig, TradingScripts, now_ms
from ftl.trading import amm
from ftl.trading.leaderboard import TieBreak, latest_snapshot, take_snapshot
from ftl.worker import liquidation
from ftl.worker import mark_to_market as mtm
from ftl.worker.liquidation import SweepStats
from ftl.worker.mark_values import CHUNK, POS_FIELDS, Market, Pos, chunks, entry_field, parse_pos, text

__all__ = ["CHUNK", "MTM_DUTY", "Market", "Marks", "Pos", "SweepStats"]

log = logs.get(__name__)

MTM_DUTY = 4  # mark-to-market waits at least 4x its last pass's duration before the next


class Marks:
    """Position index, mark-to-market pass, liquidation sweep and snapshot schedule."""

    def __init__(
        self,
        stores: Stores,
        *,
        config: TradingConfig | None = None,
        mtm_interval_s: float = 1.0,
        snapshot_interval_s: float = 300.0,
        snapshot_top: int = 1000,
        tie_break: TieBreak | None = None,
        max_rounds: int = 20,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        s = stores.settings
        self.stores = stores
        self.config = config or TradingConfig(
            fee_bps=s.fee_bps, mm_bps=s.mm_bps, max_index_age_ms=s.max_index_age_s * 1000
        )
        self.trading = TradingScripts(stores.scripts, stores.keys, self.config, clock=clock)
        self.mtm_interval_ms = int(mtm_interval_s * 1000)
        self.snapshot_interval_ms = int(snapshot_interval_s * 1000)
        self.snapshot_top = snapshot_top
        self.tie_break = tie_break or TieBreak()
        self.max_rounds = max_rounds
        self.clock = clock
        self._last_mtm: int | None = None
        self._mtm_gap_ms = self.mtm_interval_ms  # the interval, stretched while a pass is long
        self._last_snapshot: int | None = None
        self.warned: set[tuple[int, str]] = set()
        """(position, code) of the refused liquidations already logged by the sweep."""
        self.idle: asyncio.Event | None = None
        """Set by the flusher: cleared while a flush pass runs. The long passes here
        (mark-to-market) wait for it between chunks, so the ledger's lag does not pay for them."""
        p = stores.keys.prefix
        self.k_instruments = f"{p}liq:instruments"
        self.k_liq_marks = f"{p}liq:marks"
        self.k_mtm_marks = f"{p}mtm:marks"
        self.k_mtm_users = f"{p}mtm:users"
        self.k_ready = f"{p}liq:ready"

    @property
    def redis(self) -> Any:
        return self.stores.redis

    def k_liq(self, side: str, instrument_id: int) -> str:
        return f"{self.stores.keys.prefix}liq:{side}:{instrument_id}"

    def k_holdings(self, user_id: int) -> str:
        return f"{self.stores.keys.prefix}holdings:{user_id}"

    # -- the position index ------------------------------------------------------------------

    def _liq_score(self, p: Pos) -> float:
        price = amm.liquidation_price(p.side, p.qty, p.entry_notional, p.margin, self.config.mm_bps)
        return float("-inf") if price is None else float(price)

    async def read_positions(self, pids: Sequence[int], polite: bool = True) -> dict[int, Pos | None]:
        out: dict[int, Pos | None] = {}
        for part in chunks(pids):
            if polite:  # not from track(), which runs inside the flush pass
                await self.give_way()
            pipe = self.redis.pipeline(transaction=False)
            for pid in part:
                pipe.hmget(self.stores.keys.position(pid), *POS_FIELDS)
            for pid, raw in zip(part, await pipe.execute(), strict=True):
                out[pid] = parse_pos(pid, raw)
        return out

    def queue_index(
        self, pipe: Any, pid: int, p: Pos | None, user: int | None, instrument: int | None
    ) -> None:
        """Queue the index update of one position (re-read from its hash) on ``pipe``."""
        if p is not None and p.open:
            other = "short" if p.side == "long" else "long"
            pipe.zadd(self.k_liq(p.side, p.instrument), {str(pid): self._liq_score(p)})
            pipe.zrem(self.k_liq(other, p.instrument), str(pid))
            pipe.sadd(self.k_holdings(p.user), str(pid))
            pipe.sadd(self.k_instruments, str(p.instrument))
            pipe.hdel(self.k_liq_marks, str(p.instrument))  # check it at the current mark
            return
        instrument = p.instrument if p is not None else instrument
        user = p.user if p is not None else user
        if instrument is not None:
            pipe.zrem(self.k_liq("long", instrument), str(pid))
            pipe.zrem(self.k_liq("short", instrument), str(pid))
        if user is not None:
            pipe.srem(self.k_holdings(user), str(pid))

    async def track(self, entries: Sequence[Mapping[Any, Any]]) -> int:
        """Index the positions the drained outbox entries touched; queue their owners for
        mark-to-market. Reads each position hash, so the order of entries does not matter."""
        refs: dict[int, tuple[int, int]] = {}
        for e in entries:
            raw = (entry_field(e, "position_id"), entry_field(e, "user_id"), entry_field(e, "instrument_id"))
            if all(x and x.isdigit() for x in raw):
                refs[int(str(raw[0]))] = (int(str(raw[1])), int(str(raw[2])))
        if not refs:
            return 0
        found = await self.read_positions(list(refs), polite=False)
        pipe = self.redis.pipeline(transaction=False)
        hot = await self._hot() is not None
        for position_id, (uid, iid) in refs.items():
            p = found.get(position_id)
            if p is None and not hot:
                continue  # Redis lost its state: the rebuild indexes from PostgreSQL
            self.queue_index(pipe, position_id, p, uid, iid)
        pipe.sadd(self.k_mtm_users, *{str(uid) for uid, _ in refs.values()})
        await pipe.execute()
        return len(refs)

    async def _hot(self) -> str | None:
        boot = await self.redis.get(self.stores.keys.boot_marker)
        return None if boot is None else text(boot)

    async def ensure_index(self) -> bool:
        """Rebuild the index when it was not built for the current hot state; True if rebuilt.
        False with nothing done while Redis has no hot state (a rebuild is due first)."""
        boot = await self._hot()
        if boot is None:
            return False
        want = f"{boot}:{self.config.mm_bps}"
        ready = await self.redis.get(self.k_ready)
        if ready is not None and text(ready) == want:
            return False
        await self.rebuild_index()
        await self.redis.set(self.k_ready, want)
        return True

    async def rebuild_index(self) -> int:
        """Index every open position of PostgreSQL (as Redis has it now); every instrument and
        every holder gets marked again."""
        async with self.stores.pg.connection() as conn:
            cur = await conn.execute(
                "SELECT id, user_id, instrument_id FROM cfd_positions WHERE status = 'open'"
            )
            rows = [(int(a), int(b), int(c)) for a, b, c in await cur.fetchall()]
        await self.redis.delete(self.k_liq_marks, self.k_mtm_marks)
        for part in chunks(rows):
            found = await self.read_positions([pid for pid, _, _ in part])
            pipe = self.redis.pipeline(transaction=False)
            for pid, uid, iid in part:
                self.queue_index(pipe, pid, found.get(pid), uid, iid)
            await pipe.execute()
        log.info("position index rebuilt", positions=len(rows))
        return len(rows)

    # -- instruments ---------------------------------------------------------------------------

    async def read_markets(self, iids: Sequence[int]) -> dict[int, Market]:
        out: dict[int, Market] = {}
        for part in chunks(iids):
            pipe = self.redis.pipeline(transaction=False)
            for iid in part:
                pipe.hmget(self.stores.keys.instrument(iid), "index", "skew", "depth", "status")
            for iid, h in zip(part, await pipe.execute(), strict=True):
                if h[0] is not None and h[2] is not None and int(h[2]) > 0:
                    out[iid] = Market(int(h[0]), int(h[1] or 0), int(h[2]), text(h[3] or b"open"))
        return out

    async def moved(self, marks_key: str, markets: Mapping[int, Market], mark_only: bool) -> list[int]:
        """The instruments whose mark (or ``mark:status``) differs from the one in ``marks_key``."""
        iids = sorted(markets)
        if not iids:
            return []
        seen = await self.redis.hmget(marks_key, [str(i) for i in iids])
        moved = []
        for iid, last in zip(iids, seen, strict=True):
            now = str(markets[iid].mark) if mark_only else markets[iid].state
            if last is None or text(last) != now:
                moved.append(iid)
        return moved

    async def tracked_instruments(self) -> list[int]:
        return sorted(int(text(m)) for m in await self.redis.smembers(self.k_instruments))

    # -- the passes (ftl/worker/liquidation.py, ftl/worker/mark_to_market.py) ------------

    async def sweep(self) -> SweepStats:
        """Liquidate the positions past their liquidation price in every instrument whose mark
        (or status) changed since its last complete sweep."""
        return await liquidation.sweep(self)

    async def mark_to_market(self, now: int | None = None) -> int:
        """Recompute the equity of the holders of every instrument whose mark moved since the
        last pass, and of every user who traded; returns how many scores were rewritten."""
        return await mtm.mark_to_market(self, now)

    async def remark(
        self,
        user_ids: Sequence[int],
        *,
        now: int | None = None,
        markets: Mapping[int, Market] | None = None,
        cache: dict[int, Pos | None] | None = None,
    ) -> int:
        """Set the users' leaderboard scores to available + locked + unrealised PnL at mark.
        A score whose equity did not change keeps its time (earlier reach wins)."""
        return await mtm.remark(self, user_ids, now=now, markets=markets, cache=cache)

    async def give_way(self, limit_s: float = 0.5) -> None:
        """Wait (at most ``limit_s``) while a flush pass runs, so the ledger's lag comes first."""
        if self.idle is not None and not self.idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), limit_s)

    # -- the flusher's periodic call ----------------------------------------------------------------

    async def tick(self, now: int | None = None) -> None:
        """After a flush pass: sweep moved instruments; mark-to-market and snapshot when due."""
        if await self._hot() is None:
            return
        await self.ensure_index()
        await self.sweep()
        now = self.clock() if now is None else now
        if self._last_mtm is None or now - self._last_mtm >= self._mtm_gap_ms:
            t0 = time.perf_counter()
            await self.mark_to_market(now)
            self._last_mtm = now
            # It shares the flusher's event loop and CPU with the flush loop: under load (a pass
            # over many open positions) it runs less often, at most ~1/MTM_DUTY of the time, so
            # the ledger's lag does not pay for leaderboard freshness.
            spent_ms = (time.perf_counter() - t0) * 1000
            self._mtm_gap_ms = max(self.mtm_interval_ms, int(spent_ms * MTM_DUTY))
        if self.snapshot_interval_ms > 0:
            await self._maybe_snapshot(now)

    async def _maybe_snapshot(self, now: int) -> None:
        if self._last_snapshot is None:
            latest = await latest_snapshot(self.stores)
            self._last_snapshot = 0 if latest is None else int(latest.timestamp() * 1000)
        if now - self._last_snapshot < self.snapshot_interval_ms:
            return
        t0 = time.perf_counter()
        rows = await take_snapshot(
            self.stores, top=self.snapshot_top, taken_at=datetime.fromtimestamp(now / 1000, UTC)
        )
        self._last_snapshot = now
        log.info("leaderboard snapshot", rows=rows, seconds=round(time.perf_counter() - t0, 3))
