"""Mark-to-market of leaderboard equity, the liquidation sweep and scheduled leaderboard snapshots.

Run by the flusher: :meth:`Marks.track` after each outbox batch is written, :meth:`Marks.tick`
after each pass. Redis keys of its own (all rebuildable from PostgreSQL plus the position hashes):

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ftl import logs
from ftl.stores import Stores
from ftl.trading import amm
from ftl.trading import results as r
from ftl.trading.leaderboard import TieBreak, equity_of, has_tie_break, latest_snapshot, take_snapshot
from ftl.trading.results import CloseResult
from ftl.trading.scripts import TradingConfig, TradingScripts, now_ms

log = logs.get(__name__)

MTM_DUTY = 4  # mark-to-market waits at least 4x its last pass's duration before the next
CHUNK = 500  # positions or users a pipeline: the event loop (the flush loop) gets a turn between
_POS_FIELDS = ("user", "instrument", "side", "qty", "entry_notional", "margin", "status")
# Rejections after which the position is not worth keeping in the index.
_GONE = {r.NOT_OPEN, r.NOT_FOUND, r.NOT_OWNER, r.WRONG_INSTRUMENT}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(entry: Mapping[Any, Any], name: str) -> str | None:
    value = entry.get(name.encode(), entry.get(name))
    return None if value is None else _text(value)


@dataclass(frozen=True, slots=True)
class Pos:
    """The fields of a position hash the passes need."""

    id: int
    user: int
    instrument: int
    side: amm.Side
    qty: int
    entry_notional: int
    margin: int
    status: str

    @property
    def open(self) -> bool:
        return self.status == "open" and self.qty > 0


def _pos(pid: int, raw: Sequence[Any]) -> Pos | None:
    if raw[0] is None or raw[1] is None:
        return None
    side = _text(raw[2])
    return Pos(
        pid, int(raw[0]), int(raw[1]), "short" if side == "short" else "long",
        int(raw[3] or 0), int(raw[4] or 0), int(raw[5] or 0), _text(raw[6] or b""),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Market:
    index: int
    skew: int
    depth: int
    status: str

    @property
    def mark(self) -> int:
        return amm.mark(self.index, self.skew, self.depth)

    @property
    def state(self) -> str:
        return f"{self.mark}:{self.status}"


@dataclass
class SweepStats:
    instruments: int = 0
    """Instruments whose mark moved since the last complete sweep."""
    liquidated: list[int] = field(default_factory=list)
    blocked: int = 0
    """Instruments left for the next pass (a liquidation was refused: halted, stale, cap...)."""


def _chunks(items: Sequence[Any], n: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


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
        self._warned: set[tuple[int, str]] = set()
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

    async def _read_positions(self, pids: Sequence[int], polite: bool = True) -> dict[int, Pos | None]:
        out: dict[int, Pos | None] = {}
        for part in _chunks(pids):
            if polite:  # not from track(), which runs inside the flush pass
                await self._give_way()
            pipe = self.redis.pipeline(transaction=False)
            for pid in part:
                pipe.hmget(self.stores.keys.position(pid), *_POS_FIELDS)
            for pid, raw in zip(part, await pipe.execute(), strict=True):
                out[pid] = _pos(pid, raw)
        return out

    def _index(self, pipe: Any, pid: int, p: Pos | None, user: int | None, instrument: int | None) -> None:
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
            raw = (_field(e, "position_id"), _field(e, "user_id"), _field(e, "instrument_id"))
            if all(x and x.isdigit() for x in raw):
                refs[int(str(raw[0]))] = (int(str(raw[1])), int(str(raw[2])))
        if not refs:
            return 0
        found = await self._read_positions(list(refs), polite=False)
        pipe = self.redis.pipeline(transaction=False)
        hot = await self._hot() is not None
        for position_id, (uid, iid) in refs.items():
            p = found.get(position_id)
            if p is None and not hot:
                continue  # Redis lost its state: the rebuild indexes from PostgreSQL
            self._index(pipe, position_id, p, uid, iid)
        pipe.sadd(self.k_mtm_users, *{str(uid) for uid, _ in refs.values()})
        await pipe.execute()
        return len(refs)

    async def _hot(self) -> str | None:
        boot = await self.redis.get(self.stores.keys.boot_marker)
        return None if boot is None else _text(boot)

    async def ensure_index(self) -> bool:
        """Rebuild the index when it was not built for the current hot state; True if rebuilt.
        False with nothing done while Redis has no hot state (a rebuild is due first)."""
        boot = await self._hot()
        if boot is None:
            return False
        want = f"{boot}:{self.config.mm_bps}"
        ready = await self.redis.get(self.k_ready)
        if ready is not None and _text(ready) == want:
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
        for part in _chunks(rows):
            found = await self._read_positions([pid for pid, _, _ in part])
            pipe = self.redis.pipeline(transaction=False)
            for pid, uid, iid in part:
                self._index(pipe, pid, found.get(pid), uid, iid)
            await pipe.execute()
        log.info("position index rebuilt", positions=len(rows))
        return len(rows)

    # -- instruments ---------------------------------------------------------------------------

    async def _markets(self, iids: Sequence[int]) -> dict[int, Market]:
        out: dict[int, Market] = {}
        for part in _chunks(iids):
            pipe = self.redis.pipeline(transaction=False)
            for iid in part:
                pipe.hmget(self.stores.keys.instrument(iid), "index", "skew", "depth", "status")
            for iid, h in zip(part, await pipe.execute(), strict=True):
                if h[0] is not None and h[2] is not None and int(h[2]) > 0:
                    out[iid] = Market(int(h[0]), int(h[1] or 0), int(h[2]), _text(h[3] or b"open"))
        return out

    async def _moved(self, marks_key: str, markets: Mapping[int, Market], mark_only: bool) -> list[int]:
        iids = sorted(markets)
        if not iids:
            return []
        seen = await self.redis.hmget(marks_key, [str(i) for i in iids])
        moved = []
        for iid, last in zip(iids, seen, strict=True):
            now = str(markets[iid].mark) if mark_only else markets[iid].state
            if last is None or _text(last) != now:
                moved.append(iid)
        return moved

    async def _tracked_instruments(self) -> list[int]:
        return sorted(int(_text(m)) for m in await self.redis.smembers(self.k_instruments))

    # -- liquidation sweep ------------------------------------------------------------------------

    async def sweep(self) -> SweepStats:
        """Liquidate the positions past their liquidation price in every instrument whose mark
        (or status) changed since its last complete sweep."""
        stats = SweepStats()
        markets = await self._markets(await self._tracked_instruments())
        moved = await self._moved(self.k_liq_marks, markets, mark_only=False)
        stats.instruments = len(moved)
        for iid in moved:
            state = await self._sweep_instrument(iid, markets[iid], stats)
            if state is None:
                stats.blocked += 1
            else:
                await self.redis.hset(self.k_liq_marks, str(iid), state)
        if stats.liquidated:
            log.info("liquidation sweep", liquidated=len(stats.liquidated), instruments=len(moved))
        return stats

    async def _sweep_instrument(self, iid: int, market: Market, stats: SweepStats) -> str | None:
        """Liquidate until no candidate is left at the current mark; the state swept, or None
        when a refusal leaves work for the next pass."""
        for _ in range(self.max_rounds):
            if market.status != "open":
                return market.state  # nothing can be liquidated; a status change sweeps again
            m = market.mark
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrangebyscore(self.k_liq("long", iid), m, "+inf")
            pipe.zrangebyscore(self.k_liq("short", iid), "-inf", f"({m}")
            longs, shorts = await pipe.execute()
            candidates = sorted(int(_text(x)) for x in [*longs, *shorts])
            if not candidates:
                return market.state
            progressed = blocked = False
            for pid in candidates:
                res = await self.trading.liquidate_position(pid)
                if isinstance(res, CloseResult):
                    stats.liquidated.append(pid)
                    progressed = True
                    await self._index_drop(pid, None, iid)
                elif res.code in _GONE:
                    await self._index_drop(pid, None, iid)
                elif res.code != r.NOT_LIQUIDATABLE:
                    blocked = True
                    if (pid, res.code) not in self._warned:
                        self._warned.add((pid, res.code))
                        log.warning("liquidation refused; retrying", position_id=pid, code=res.code)
            if blocked:
                return None
            if not progressed:
                return market.state  # a later move of the mark differs from it: swept again
            fresh = (await self._markets([iid])).get(iid)
            if fresh is None:
                return None
            market = fresh
        return None

    async def _index_drop(self, pid: int, user: int | None, iid: int) -> None:
        found = (await self._read_positions([pid])).get(pid)
        pipe = self.redis.pipeline(transaction=False)
        self._index(pipe, pid, found, user, iid)
        if found is not None:
            pipe.sadd(self.k_mtm_users, str(found.user))
        await pipe.execute()

    # -- mark-to-market ---------------------------------------------------------------------------

    async def mark_to_market(self, now: int | None = None) -> int:
        """Recompute the equity of the holders of every instrument whose mark moved since the
        last pass, and of every user who traded; returns how many scores were rewritten."""
        now = self.clock() if now is None else now
        markets = await self._markets(await self._tracked_instruments())
        moved = await self._moved(self.k_mtm_marks, markets, mark_only=True)
        queued = list(await self.redis.smembers(self.k_mtm_users))
        users: set[int] = {int(_text(u)) for u in queued}
        cache: dict[int, Pos | None] = {}
        for iid in moved:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrange(self.k_liq("long", iid), 0, -1)
            pipe.zrange(self.k_liq("short", iid), 0, -1)
            longs, shorts = await pipe.execute()
            pids = [int(_text(x)) for x in [*longs, *shorts]]
            cache.update(await self._read_positions(pids))
            users.update(p.user for pid in pids if (p := cache.get(pid)) is not None)
        written = await self.remark(sorted(users), now=now, markets=markets, cache=cache)
        pipe = self.redis.pipeline(transaction=False)
        if moved:
            pipe.hset(self.k_mtm_marks, mapping={str(i): str(markets[i].mark) for i in moved})
        if queued:
            pipe.srem(self.k_mtm_users, *queued)  # users queued meanwhile stay for the next pass
        await pipe.execute()
        return written

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
        now = self.clock() if now is None else now
        markets = dict(markets or {})
        cache = {} if cache is None else cache
        keys = self.stores.keys
        written = 0
        for part in _chunks(user_ids):
            await self._give_way()
            pipe = self.redis.pipeline(transaction=False)
            for uid in part:
                pipe.hmget(keys.wallet(uid), "available", "locked", "district")
                pipe.smembers(self.k_holdings(uid))
                pipe.zscore(keys.leaderboard_overall, str(uid))
            hot = await pipe.execute()
            holdings = {uid: sorted(int(_text(x)) for x in hot[3 * i + 1]) for i, uid in enumerate(part)}
            missing = [pid for pids in holdings.values() for pid in pids if pid not in cache]
            cache.update(await self._read_positions(missing))
            need = {p.instrument for pids in holdings.values() for pid in pids if (p := cache.get(pid))}
            markets.update(await self._markets(sorted(need - set(markets))))
            pipe = self.redis.pipeline(transaction=False)
            for i, uid in enumerate(part):
                wallet, score = hot[3 * i], hot[3 * i + 2]
                if wallet[0] is None:
                    continue
                equity = int(wallet[0]) + int(wallet[1] or 0)
                for pid in holdings[uid]:
                    p = cache.get(pid)
                    if p is None or not p.open or p.user != uid:
                        pipe.srem(self.k_holdings(uid), str(pid))
                        continue
                    market = markets.get(p.instrument)
                    if market is not None:
                        equity += amm.unrealised_pnl(p.side, p.qty, p.entry_notional, market.mark)
                new = self.tie_break.score(equity, now)
                if score is not None:
                    old = float(score)
                    if equity_of(old) == equity and (has_tie_break(old) or not has_tie_break(new)):
                        continue  # same equity: keep the time it was first reached
                pipe.zadd(keys.leaderboard_overall, {str(uid): new})
                district = _text(wallet[2] or b"")
                if district:
                    pipe.zadd(keys.leaderboard_district(district), {str(uid): new})
                written += 1
            await pipe.execute()
        return written

    async def _give_way(self, limit_s: float = 0.5) -> None:
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
