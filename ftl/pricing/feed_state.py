"""The price feed's state in PostgreSQL (``sql/0004_feed_state.sql``), so that a restart or a new
poller leader carries on exactly where the last poll left off.

What a :class:`~ftl.pricing.normalise.Normaliser` needs to continue is its players (base price,
index, last rating, halt), its fixtures (progress, events seen) and the time of its last poll.
``save`` writes what changed since the last save after every poll; ``load`` reads it all back,
falling back to ``instruments`` for a player the feed has never priced.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from ftl.pricing.normalise import FeedState, FixtureState, Normaliser, PlayerState

KEEP_FIXTURES = timedelta(days=3)
"""Fixtures not updated for this long are forgotten (their events can halt nothing any more)."""


async def load(conn: psycopg.AsyncConnection[Any]) -> FeedState:
    """The feed's state: every instrument as a player (keyed by Sportmonks player id), the
    fixtures seen in the last days and the last poll's time."""
    state = FeedState()
    cur = await conn.execute(
        "SELECT i.player_id, i.id, coalesce(f.base_price, i.base_price, i.index_price), "
        "coalesce(f.price, i.index_price), coalesce(f.rating, i.rating::double precision), "
        "f.halt_until_ms FROM instruments i LEFT JOIN feed_players f ON f.instrument_id = i.id"
    )
    for player_id, iid, base, price, rating, halt in await cur.fetchall():
        state.players[int(player_id)] = PlayerState(
            int(iid), int(base), int(price), None if rating is None else float(rating), halt
        )
    cur = await conn.execute(
        "SELECT fixture_id, progress_period, progress_s, seen_events FROM feed_fixtures "
        "WHERE updated_at > now() - %s",
        (KEEP_FIXTURES,),
    )
    for fixture_id, period, seconds, seen in await cur.fetchall():
        progress = None if period is None or seconds is None else (int(period), int(seconds))
        state.fixtures[int(fixture_id)] = FixtureState(progress, {int(e) for e in seen})
    cur = await conn.execute("SELECT last_step_ms FROM feed_clock")
    row = await cur.fetchone()
    state.last_step_ms = None if row is None else int(row[0])
    return state


async def save(conn: psycopg.AsyncConnection[Any], normaliser: Normaliser) -> int:
    """Write what changed since the last save, in one transaction; then mark it stored.
    Returns the number of rows written. On an error nothing is marked (the next save retries)."""
    players = sorted(normaliser.dirty_players)
    fixtures = sorted(normaliser.dirty_fixtures)
    player_rows = [
        (pid, s.instrument_id, s.base_cents, s.price_cents, s.rating, s.halt_until_ms)
        for pid in players
        for s in (normaliser.players[pid],)
    ]
    fixture_rows = []
    for fid in fixtures:
        f = normaliser.fixtures[fid]
        period, seconds = f.progress if f.progress is not None else (None, None)
        fixture_rows.append((fid, period, seconds, sorted(f.seen_events)))
    async with conn.transaction(), conn.cursor() as cur:
        if player_rows:
            await cur.executemany(
                "INSERT INTO feed_players (player_id, instrument_id, base_price, price, rating, "
                "halt_until_ms) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (player_id) DO UPDATE SET "
                "instrument_id = EXCLUDED.instrument_id, base_price = EXCLUDED.base_price, "
                "price = EXCLUDED.price, rating = EXCLUDED.rating, halt_until_ms = EXCLUDED.halt_until_ms",
                player_rows,
            )
        if fixture_rows:
            await cur.executemany(
                "INSERT INTO feed_fixtures (fixture_id, progress_period, progress_s, seen_events) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (fixture_id) DO UPDATE SET "
                "progress_period = EXCLUDED.progress_period, progress_s = EXCLUDED.progress_s, "
                "seen_events = EXCLUDED.seen_events, updated_at = now()",
                fixture_rows,
            )
        if normaliser.last_step_ms is not None:
            await cur.execute(
                "INSERT INTO feed_clock (id, last_step_ms) VALUES (true, %s) "
                "ON CONFLICT (id) DO UPDATE SET last_step_ms = EXCLUDED.last_step_ms",
                (normaliser.last_step_ms,),
            )
    normaliser.clean(players, fixtures)
    return len(player_rows) + len(fixture_rows)
