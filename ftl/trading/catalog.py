"""Instruments as clients see them: static rows from PostgreSQL, live state from Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftl.persistence.stores import Stores
from ftl.trading import amm

_LIVE_FIELDS = ("index", "skew", "depth", "status", "index_ts")


@dataclass(frozen=True, slots=True)
class Instrument:
    id: int
    player_id: int
    name: str
    team: str
    position: str
    index_price: int
    skew: int
    depth: int
    status: str

    @property
    def price(self) -> int:
        """The mark price: what the next infinitesimal trade would pay."""
        return amm.mark(self.index_price, self.skew, self.depth)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def _with_live(stores: Stores, rows: list[tuple[Any, ...]]) -> list[Instrument]:
    pipe = stores.redis.pipeline(transaction=False)
    for row in rows:
        pipe.hmget(stores.keys.instrument(row[0]), *_LIVE_FIELDS)
    live = await pipe.execute() if rows else []
    out = []
    for row, hot in zip(rows, live, strict=True):
        iid, player_id, name, team, position, index, skew, depth, status = row
        if hot[0] is not None:  # Redis is ahead of PostgreSQL
            index, skew, depth, status = (
                int(hot[0]),
                int(hot[1] or 0),
                int(hot[2] or depth),
                _text(hot[3] or status),
            )
        out.append(Instrument(iid, player_id, name, team, position, index, skew, depth, status))
    return out


_SELECT = "SELECT id, player_id, name, team, position, index_price, skew, depth, status FROM instruments"


async def get(stores: Stores, instrument_id: int) -> Instrument | None:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(_SELECT + " WHERE id = %s", (instrument_id,))
        row = await cur.fetchone()
    if row is None:
        return None
    return (await _with_live(stores, [tuple(row)]))[0]


async def page(
    stores: Stores,
    *,
    team: str | None,
    position: str | None,
    limit: int,
    after: int,
) -> tuple[list[Instrument], int | None]:
    """One page ordered by id; the cursor is the last id of the page."""
    where = ["id > %s"]
    args: list[Any] = [after]
    if team:
        where.append("team = %s")
        args.append(team)
    if position:
        where.append("position = %s")
        args.append(position)
    sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY id LIMIT %s"
    args.append(limit + 1)
    async with stores.pg.connection() as conn:
        cur = await conn.execute(sql.encode(), args)
        rows = [tuple(r) for r in await cur.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    items = await _with_live(stores, rows)
    return items, (items[-1].id if more and items else None)
