"""Leaderboards: equity scores with an earlier-reach tie-break, ranked pages, names, snapshots.

Score encoding (``leaderboard:overall``, ``leaderboard:district:{id}``): a zset score is

    score = equity + (2^22 - 1 - slot) / 2^22,   slot = (reached_ms - epoch_ms) // slot_ms

clamped to ``0 .. 2^22 - 1``: the integer part is the equity in cents, the fraction says when
that equity was reached (earlier = larger fraction = ranked first). ``equity = floor(score)``.
For ``|equity| < 2^31`` cents the sum needs at most 53 bits, so the double is exact; above that
the fraction is dropped (score = equity, still exact) and only the tie-break is lost. The trade
scripts ZADD a bare integer (available + locked, fraction 0): "reached just now", the latest
possible reach, until the next mark-to-market pass rewrites the score with its unrealised PnL.
Users tied on equity within one slot are ordered by Redis (reverse member order): deterministic.
With the defaults (epoch 2026-06-01, 4 s slots) the slots last 194 days, to mid December 2026;
later reaches share the last slot (set a later epoch for a later season).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ftl.config import Settings
from ftl.persistence.stores import Stores

TIE_BITS = 22
TIE_SLOTS = 1 << TIE_BITS
EXACT_EQUITY = 1 << (53 - TIE_BITS)
"""Equities with an absolute value below this carry the tie-break exactly."""
DEFAULT_EPOCH_MS = 1_780_272_000_000  # 2026-06-01T00:00:00Z
DEFAULT_SLOT_MS = 4_000
SCOPES = ("overall", "district")


@dataclass(frozen=True, slots=True)
class TieBreak:
    """Turns (equity, time reached) into a zset score; see the module docstring."""

    epoch_ms: int = DEFAULT_EPOCH_MS
    slot_ms: int = DEFAULT_SLOT_MS

    def slot(self, reached_ms: int) -> int:
        return min(max((reached_ms - self.epoch_ms) // self.slot_ms, 0), TIE_SLOTS - 1)

    def score(self, equity: int, reached_ms: int) -> float:
        if not -EXACT_EQUITY < equity < EXACT_EQUITY:
            return float(equity)
        return equity + (TIE_SLOTS - 1 - self.slot(reached_ms)) / TIE_SLOTS


def equity_of(score: float) -> int:
    """The equity (cents) a zset score stands for."""
    return math.floor(score)


def has_tie_break(score: float) -> bool:
    return score != math.floor(score)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Entry:
    rank: int
    user_id: int
    name: str
    equity: int


def board_key(stores: Stores, scope: str, district_id: int | None) -> str:
    if scope == "district":
        if district_id is None:
            raise ValueError("a district board needs a district id")
        return stores.keys.leaderboard_district(district_id)
    return stores.keys.leaderboard_overall


class Boards:
    """Reads ranked pages of the leaderboards; display names come from PostgreSQL, cached."""

    def __init__(self, stores: Stores, *, name_ttl_s: float = 60.0, name_limit: int = 100_000) -> None:
        self.stores = stores
        self.name_ttl_s = name_ttl_s
        self.name_limit = name_limit
        self._names: dict[int, tuple[str, float]] = {}

    async def names(self, user_ids: Iterable[int]) -> dict[int, str]:
        now = time.monotonic()
        out: dict[int, str] = {}
        missing: list[int] = []
        for uid in user_ids:
            cached = self._names.get(uid)
            if cached is not None and cached[1] > now:
                out[uid] = cached[0]
            else:
                missing.append(uid)
        if missing:
            async with self.stores.pg.connection() as conn:
                cur = await conn.execute("SELECT id, name FROM users WHERE id = ANY(%s)", (missing,))
                rows = await cur.fetchall()
            if len(self._names) + len(rows) > self.name_limit:
                self._names.clear()
            for uid, name in rows:
                self._names[int(uid)] = (str(name), now + self.name_ttl_s)
                out[int(uid)] = str(name)
        return out

    async def top(self, key: str, limit: int) -> list[Entry]:
        """The first ``limit`` users of a board, best first."""
        rows: list[Any] = list(await self.stores.redis.zrevrange(key, 0, limit - 1, withscores=True))
        ranked = [(int(_text(m)), float(s)) for m, s in rows if _text(m).isdigit()]
        names = await self.names(uid for uid, _ in ranked)
        return [
            Entry(rank, uid, names.get(uid, ""), equity_of(score))
            for rank, (uid, score) in enumerate(ranked, start=1)
        ]

    async def me(self, key: str, user_id: int) -> tuple[int | None, int]:
        """The user's rank on a board (None when not on it) and his equity."""
        pipe = self.stores.redis.pipeline(transaction=False)
        pipe.zrevrank(key, str(user_id))
        pipe.zscore(key, str(user_id))
        pipe.zscore(self.stores.keys.leaderboard_overall, str(user_id))
        pipe.hmget(self.stores.keys.wallet(user_id), "available", "locked")
        rank, score, overall, wallet = await pipe.execute()
        if score is None:
            score = overall
        if score is not None:
            equity = equity_of(float(score))
        elif wallet[0] is not None:
            equity = int(wallet[0]) + int(wallet[1] or 0)
        else:
            async with self.stores.pg.connection() as conn:
                cur = await conn.execute(
                    "SELECT available + locked FROM wallets WHERE user_id = %s", (user_id,)
                )
                row = await cur.fetchone()
            equity = int(row[0]) if row else 0
        return (None if rank is None else int(rank) + 1), equity


async def _districts(stores: Stores) -> list[int]:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT DISTINCT district_id FROM users WHERE district_id IS NOT NULL ORDER BY 1"
        )
        return [int(r[0]) for r in await cur.fetchall()]


async def take_snapshot(
    stores: Stores,
    *,
    top: int = 1000,
    taken_at: datetime | None = None,
    districts: Sequence[int] | None = None,
) -> int:
    """Write the first ``top`` ranks of the overall board and of every district board into
    ``leaderboard_snapshots`` (one ``taken_at`` for all rows); returns the rows written."""
    taken = taken_at or datetime.now(UTC)
    boards: list[tuple[str, int | None]] = [("overall", None)]
    boards += [("district", d) for d in (await _districts(stores) if districts is None else districts)]
    pipe = stores.redis.pipeline(transaction=False)
    for scope, district in boards:
        pipe.zrevrange(board_key(stores, scope, district), 0, top - 1, withscores=True)
    pages = await pipe.execute()
    rows: list[tuple[Any, ...]] = []
    for (scope, district), page in zip(boards, pages, strict=True):
        rank = 0
        for member, score in page:
            if not _text(member).isdigit():
                continue
            rank += 1
            rows.append((taken, scope, district, int(_text(member)), rank, equity_of(float(score))))
    if not rows:
        return 0
    copy_sql = "COPY leaderboard_snapshots (taken_at, scope, district_id, user_id, rank, equity) FROM STDIN"
    async with (
        stores.pg.connection() as conn,
        conn.transaction(),
        conn.cursor() as cur,
        cur.copy(copy_sql) as copy,
    ):
        for row in rows:
            await copy.write_row(row)
    return len(rows)


async def latest_snapshot(stores: Stores) -> datetime | None:
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT max(taken_at) FROM leaderboard_snapshots")
        row = await cur.fetchone()
    return None if row is None else row[0]


def run_snapshot(settings: Settings, top: int = 1000) -> int:
    """``ftl snapshot``: take one snapshot now against the configured servers; the exit code.

    Needs ``FTL_REDIS_URL`` and ``FTL_DATABASE_URL``: embedded servers belong to the process
    that started them (there the flusher takes snapshots on its schedule).
    """
    import asyncio
    import sys

    if not (settings.redis_url and settings.database_url):
        print("ftl: snapshot needs FTL_REDIS_URL and FTL_DATABASE_URL", file=sys.stderr)
        return 2

    async def go(redis_url: str, database_url: str) -> int:
        stores = await Stores.open(settings, redis_url, database_url)
        try:
            return await take_snapshot(stores, top=top)
        finally:
            await stores.close()

    written = asyncio.run(go(settings.redis_url, settings.database_url))
    print(f"leaderboard snapshot: {written} row(s)")
    return 0
