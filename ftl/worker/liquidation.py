"""The liquidation sweep: liquidate positions past their liquidation price where the mark moved.

Candidates come from the position index of :class:`ftl.worker.marks.Marks` (``liq:long:{iid}``,
``liq:short:{iid}``, scored by liquidation price): a long is liquidatable at mark ``m`` iff
``m <= liq``, a short iff ``m > liq`` (the script makes the exact test). An instrument is swept
again only when its ``mark:status`` differs from the one in ``liq:marks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ftl import logs
from ftl.persistence import trade_replies as r
from ftl.persistence.trade_replies import CloseResult
from ftl.worker.mark_values import Market, text

if TYPE_CHECKING:
    from ftl.worker.marks import Marks

log = logs.get(__name__)

# Rejections after which the position is not worth keeping in the index.
_GONE = {r.NOT_OPEN, r.NOT_FOUND, r.NOT_OWNER, r.WRONG_INSTRUMENT}


@dataclass
class SweepStats:
    instruments: int = 0
    """Instruments whose mark moved since the last complete sweep."""
    liquidated: list[int] = field(default_factory=list)
    blocked: int = 0
    """Instruments left for the next pass (a liquidation was refused: halted, stale, cap...)."""


async def sweep(marks: Marks) -> SweepStats:
    """Liquidate the positions past their liquidation price in every instrument whose mark
    (or status) changed since its last complete sweep."""
    stats = SweepStats()
    markets = await marks.read_markets(await marks.tracked_instruments())
    moved = await marks.moved(marks.k_liq_marks, markets, mark_only=False)
    stats.instruments = len(moved)
    for iid in moved:
        state = await _sweep_instrument(marks, iid, markets[iid], stats)
        if state is None:
            stats.blocked += 1
        else:
            await marks.redis.hset(marks.k_liq_marks, str(iid), state)
    if stats.liquidated:
        log.info("liquidation sweep", liquidated=len(stats.liquidated), instruments=len(moved))
    return stats


async def _sweep_instrument(marks: Marks, iid: int, market: Market, stats: SweepStats) -> str | None:
    """Liquidate until no candidate is left at the current mark; the state swept, or None
    when a refusal leaves work for the next pass."""
    for _ in range(marks.max_rounds):
        if market.status != "open":
            return market.state  # nothing can be liquidated; a status change sweeps again
        m = market.mark
        pipe = marks.redis.pipeline(transaction=False)
        pipe.zrangebyscore(marks.k_liq("long", iid), m, "+inf")
        pipe.zrangebyscore(marks.k_liq("short", iid), "-inf", f"({m}")
        longs, shorts = await pipe.execute()
        candidates = sorted(int(text(x)) for x in [*longs, *shorts])
        if not candidates:
            return market.state
        progressed = blocked = False
        for pid in candidates:
            res = await marks.trading.liquidate_position(pid)
            if isinstance(res, CloseResult):
                stats.liquidated.append(pid)
                progressed = True
                await _index_drop(marks, pid, None, iid)
            elif res.code in _GONE:
                await _index_drop(marks, pid, None, iid)
            elif res.code != r.NOT_LIQUIDATABLE:
                blocked = True
                if (pid, res.code) not in marks.warned:
                    marks.warned.add((pid, res.code))
                    log.warning("liquidation refused; retrying", position_id=pid, code=res.code)
        if blocked:
            return None
        if not progressed:
            return market.state  # a later move of the mark differs from it: swept again
        fresh = (await marks.read_markets([iid])).get(iid)
        if fresh is None:
            return None
        market = fresh
    return None


async def _index_drop(marks: Marks, pid: int, user: int | None, iid: int) -> None:
    found = (await marks.read_positions([pid])).get(pid)
    pipe = marks.redis.pipeline(transaction=False)
    marks.queue_index(pipe, pid, found, user, iid)
    if found is not None:
        pipe.sadd(marks.k_mtm_users, str(found.user))
    await pipe.execute()
