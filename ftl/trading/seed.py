"""Load instruments (footballers) into PostgreSQL and their hot state into Redis."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from ftl import limits
from ftl.persistence.lua_scripts import LuaScripts
from ftl.persistence.stores import Stores

DEFAULT_DEPTH = 50_000
DEFAULT_CAP = 25_000


@dataclass(frozen=True, slots=True)
class InstrumentSeed:
    id: int
    player_id: int
    name: str
    team: str
    position: str
    index_price: int
    depth: int = DEFAULT_DEPTH
    skew_cap: int = DEFAULT_CAP

    def __post_init__(self) -> None:
        if not limits.MIN_PRICE <= self.index_price <= limits.MAX_PRICE:
            raise ValueError(
                f"instrument {self.id} ({self.name}): start price {self.index_price} is outside "
                f"{limits.MIN_PRICE}..{limits.MAX_PRICE} cents"
            )


_UPSERT = """
INSERT INTO instruments (id, player_id, name, team, position, index_price, base_price, depth, skew_cap)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, team = EXCLUDED.team,
    position = EXCLUDED.position, depth = EXCLUDED.depth, skew_cap = EXCLUDED.skew_cap
"""


async def write_instruments(conn: psycopg.AsyncConnection[Any], seeds: Iterable[InstrumentSeed]) -> int:
    rows = [
        (s.id, s.player_id, s.name, s.team, s.position, s.index_price, s.index_price, s.depth, s.skew_cap)
        for s in seeds
    ]
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(_UPSERT, rows)
    return len(rows)


async def load_hot_instruments(stores: Stores) -> int:
    """Put every instrument PostgreSQL has, and Redis lacks, into Redis. Returns how many."""
    await stores.scripts.load_all()
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT id, index_price, (extract(epoch FROM index_ts) * 1000)::bigint, skew, depth, "
            "skew_cap, status FROM instruments"
        )
        rows = await cur.fetchall()
        cur = await conn.execute(
            "SELECT instrument_id, "
            "coalesce(sum(qty) FILTER (WHERE side = 'long'), 0), "
            "coalesce(sum(qty) FILTER (WHERE side = 'short'), 0) "
            "FROM cfd_positions WHERE status = 'open' GROUP BY instrument_id"
        )
        units = {r[0]: (int(r[1]), int(r[2])) for r in await cur.fetchall()}
    now = int(time.time() * 1000)
    hashes: list[tuple[str, list[Any]]] = []
    for iid, index, index_ts, _skew, depth, cap, status in rows:
        long_units, short_units = units.get(iid, (0, 0))
        fields = [
            "index",
            index,
            "index_ts",
            max(index_ts, now),
            "skew",
            long_units - short_units,
            "depth",
            depth,
            "cap",
            cap,
            "status",
            status,
            "long",
            long_units,
            "short",
            short_units,
            "pseq",
            0,
        ]
        hashes.append((stores.keys.instrument(iid), fields))
    loaded = await LuaScripts(stores.scripts, stores.keys).hash_load(hashes)  # one round trip
    return sum(loaded)


async def seed(stores: Stores, seeds: Iterable[InstrumentSeed]) -> tuple[int, int]:
    """Upsert the instruments in PostgreSQL, then load the missing ones into Redis."""
    async with stores.pg.connection() as conn:
        written = await write_instruments(conn, seeds)
    return written, await load_hot_instruments(stores)


def demo_seeds() -> list[InstrumentSeed]:
    """The bundled demo squads (48 teams of 26) as instruments; instrument id = player id."""
    from ftl.pricing.demo import load_squads

    return [
        InstrumentSeed(p.player_id, p.player_id, p.name, p.team, p.position, p.index_price)
        for p in load_squads()
    ]


def squad_file_seeds(path: str) -> list[InstrumentSeed]:
    """Instruments from a squads file in the bundled file's shape."""
    import json
    from pathlib import Path

    from ftl.pricing.demo import parse_squads

    players = parse_squads(json.loads(Path(path).read_text()))
    return [
        InstrumentSeed(p.player_id, p.player_id, p.name, p.team, p.position, p.index_price) for p in players
    ]
