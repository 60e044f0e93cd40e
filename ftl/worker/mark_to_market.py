"""Mark-to-market: leaderboard scores = available + locked + unrealised PnL at the current marks.

Recomputed for the holders of every instrument whose mark moved since the last pass
(``mtm:marks``) and for every user queued in ``mtm:users`` (they traded); the keys belong to
:class:`ftl.worker.marks.Marks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ftl.trading import amm
from ftl.trading.leaderboard import equity_of, has_tie_break
from ftl.worker.mark_values import Market, Pos, chunks, text

if TYPE_CHECKING:
    from ftl.worker.marks import Marks


async def mark_to_market(marks: Marks, now: int | None = None) -> int:
    """Recompute the equity of the holders of every instrument whose mark moved since the
    last pass, and of every user who traded; returns how many scores were rewritten."""
    now = marks.clock() if now is None else now
    markets = await marks.read_markets(await marks.tracked_instruments())
    moved = await marks.moved(marks.k_mtm_marks, markets, mark_only=True)
    queued = list(await marks.redis.smembers(marks.k_mtm_users))
    users: set[int] = {int(text(u)) for u in queued}
    cache: dict[int, Pos | None] = {}
    for iid in moved:
        pipe = marks.redis.pipeline(transaction=False)
        pipe.zrange(marks.k_liq("long", iid), 0, -1)
        pipe.zrange(marks.k_liq("short", iid), 0, -1)
        longs, shorts = await pipe.execute()
        pids = [int(text(x)) for x in [*longs, *shorts]]
        cache.update(await marks.read_positions(pids))
        users.update(p.user for pid in pids if (p := cache.get(pid)) is not None)
    written = await remark(marks, sorted(users), now=now, markets=markets, cache=cache)
    pipe = marks.redis.pipeline(transaction=False)
    if moved:
        pipe.hset(marks.k_mtm_marks, mapping={str(i): str(markets[i].mark) for i in moved})
    if queued:
        pipe.srem(marks.k_mtm_users, *queued)  # users queued meanwhile stay for the next pass
    await pipe.execute()
    return written


async def remark(
    marks: Marks,
    user_ids: Sequence[int],
    *,
    now: int | None = None,
    markets: Mapping[int, Market] | None = None,
    cache: dict[int, Pos | None] | None = None,
) -> int:
    """Set the users' leaderboard scores to available + locked + unrealised PnL at mark.
    A score whose equity did not change keeps its time (earlier reach wins)."""
    now = marks.clock() if now is None else now
    markets = dict(markets or {})
    cache = {} if cache is None else cache
    keys = marks.stores.keys
    written = 0
    for part in chunks(user_ids):
        await marks.give_way()
        pipe = marks.redis.pipeline(transaction=False)
        for uid in part:
            pipe.hmget(keys.wallet(uid), "available", "locked", "district")
            pipe.smembers(marks.k_holdings(uid))
            pipe.zscore(keys.leaderboard_overall, str(uid))
        hot = await pipe.execute()
        holdings = {uid: sorted(int(text(x)) for x in hot[3 * i + 1]) for i, uid in enumerate(part)}
        missing = [pid for pids in holdings.values() for pid in pids if pid not in cache]
        cache.update(await marks.read_positions(missing))
        need = {p.instrument for pids in holdings.values() for pid in pids if (p := cache.get(pid))}
        markets.update(await marks.read_markets(sorted(need - set(markets))))
        pipe = marks.redis.pipeline(transaction=False)
        for i, uid in enumerate(part):
            wallet, score = hot[3 * i], hot[3 * i + 2]
            if wallet[0] is None:
                continue
            equity = int(wallet[0]) + int(wallet[1] or 0)
            for pid in holdings[uid]:
                p = cache.get(pid)
                if p is None or not p.open or p.user != uid:
                    pipe.srem(marks.k_holdings(uid), str(pid))
                    continue
                market = markets.get(p.instrument)
                if market is not None:
                    equity += amm.unrealised_pnl(p.side, p.qty, p.entry_notional, market.mark)
            new = marks.tie_break.score(equity, now)
            if score is not None:
                old = float(score)
                if equity_of(old) == equity and (has_tie_break(old) or not has_tie_break(new)):
                    continue  # same equity: keep the time it was first reached
            pipe.zadd(keys.leaderboard_overall, {str(uid): new})
            district = text(wallet[2] or b"")
            if district:
                pipe.zadd(keys.leaderboard_district(district), {str(uid): new})
            written += 1
        await pipe.execute()
    return written
