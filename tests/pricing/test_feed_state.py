"""The price feed's state in PostgreSQL: a restart or a new leader at any poll carries on exactly
(real PostgreSQL and Redis, the real PriceFeed wiring, the recorded match)."""

from __future__ import annotations

import random

import pytest

from ftl.persistence.stores import Stores
from ftl.pricing import demo, feed_state
from ftl.pricing.normalise import Normaliser, PlayerState
from ftl.pricing.parse import parse_livescores
from ftl.pricing.poller import Poller, PollerMetrics
from ftl.pricing.replay import ReplayFeed, ReplayFrame, load_frames
from ftl.pricing.runner import PriceFeed
from ftl.trading.seed import load_hot_instruments
from tests.pricing.conftest import FakeTime

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

POLLS = 90  # frames of the recorded match played (one poll each)
KILLS = 20  # seeds of the kill-at-a-random-poll run


def _players(frames: list[ReplayFrame]) -> list[int]:
    found: set[int] = set()
    for frame in frames:
        for fixture in parse_livescores(frame.response).fixtures:
            found.update(p.player_id for p in fixture.players)
    return sorted(found)


async def _instruments(stores: Stores, players: list[int]) -> None:
    squad = {p.player_id: p for p in demo.load_squads()}
    async with stores.pg.connection() as conn:
        for i, pid in enumerate(players, start=1):
            price = squad[pid].index_price if pid in squad else 1000
            await conn.execute(
                "INSERT INTO instruments (id, player_id, name, team, position, index_price, "
                "base_price, depth, skew_cap) VALUES (%s, %s, 'P', 'T', 'Midfielder', %s, %s, 50000, "
                "25000)",
                (i, pid, price, price),
            )
    await load_hot_instruments(stores)  # so that index_update.lua knows them


async def _forget(stores: Stores) -> None:
    async with stores.pg.connection() as conn:
        await conn.execute("DELETE FROM feed_players")
        await conn.execute("DELETE FROM feed_fixtures")
        await conn.execute("DELETE FROM feed_clock")


def _poller(
    feed: PriceFeed, frames: list[ReplayFrame], time: FakeTime, kickoff: float, metrics: PollerMetrics
) -> Poller:
    replay = ReplayFeed(frames, clock=time.clock)
    replay._start = kickoff
    poller = Poller(
        replay,
        Normaliser.from_states({}),
        feed.apply,
        None,
        load_states=feed.load,
        clock=time.clock,
        wall_ms=time.wall_ms,
        sleep=time.sleep,
        metrics=metrics,
    )
    feed.poller = poller
    return poller


async def _run(
    stores: Stores, frames: list[ReplayFrame], metrics: PollerMetrics, kill_at: int | None
) -> list[dict[int, int]]:
    """Play the first POLLS frames, one poll each; at poll ``kill_at`` the poller is replaced by
    a new one (a restart, or another replica taking the lead), which loads the stored state."""
    await _forget(stores)
    feed = PriceFeed(stores)
    start = 1_781_204_400.0
    time = FakeTime(start)
    poller = _poller(feed, frames, time, start, metrics)
    series = []
    for k, frame in enumerate(frames[:POLLS]):
        time.now = start + frame.at_s + 0.001
        if k == kill_at:
            poller = _poller(feed, frames, time, start, metrics)  # the old one is gone
        await poller.hold_lock()
        await poller.poll_once()
        series.append(dict(poller.normaliser.prices()))
    return series


async def test_a_poller_killed_at_a_random_poll_gives_the_same_prices(
    own_stores: Stores, metrics: PollerMetrics
) -> None:
    frames = load_frames(demo.replay_path())
    await _instruments(own_stores, _players(frames))
    baseline = await _run(own_stores, frames, metrics, None)
    moved = {iid for prices in baseline for iid, p in prices.items() if p != baseline[0][iid]}
    assert len(moved) >= 10, "the recorded match moves prices"
    rng = random.Random(20261205)
    for seed in range(KILLS):
        kill_at = rng.randrange(1, POLLS)
        killed = await _run(own_stores, frames, metrics, kill_at)
        assert killed == baseline, f"seed {seed}: kill at poll {kill_at}"


async def test_state_round_trips(own_stores: Stores) -> None:
    await _instruments(own_stores, [11, 12])
    async with own_stores.pg.connection() as conn:
        state = await feed_state.load(conn)
    assert state.players[11] == PlayerState(1, 1000, 1000, None, None) and state.last_step_ms is None
    norm = Normaliser.resume(state)
    norm.players[11].rating, norm.players[11].price_cents, norm.players[11].halt_until_ms = 7.25, 1100, 99
    norm.dirty_players.add(11)
    norm.fixtures[5] = feed_state.FixtureState((2, 1234), {1, 2, 3})
    norm.dirty_fixtures.add(5)
    norm.last_step_ms = 42
    async with own_stores.pg.connection() as conn:
        assert await feed_state.save(conn, norm) == 2
        again = await feed_state.load(conn)
    assert not norm.dirty_players and not norm.dirty_fixtures
    assert again.players[11] == PlayerState(1, 1000, 1100, 7.25, 99)
    assert again.players[12] == PlayerState(2, 1000, 1000, None, None)
    assert again.fixtures[5] == feed_state.FixtureState((2, 1234), {1, 2, 3})
    assert again.last_step_ms == 42


async def test_a_failed_save_keeps_the_changes_for_the_next(own_stores: Stores) -> None:
    await _instruments(own_stores, [21])
    async with own_stores.pg.connection() as conn:
        norm = Normaliser.resume(await feed_state.load(conn))
    norm.players[21].price_cents = 1200
    norm.dirty_players.add(21)
    norm.players[21].instrument_id = 999_999  # no such instrument: the save fails
    async with own_stores.pg.connection() as conn:
        with pytest.raises(Exception, match="foreign key"):
            await feed_state.save(conn, norm)
    assert norm.dirty_players == {21}
    norm.players[21].instrument_id = 1
    async with own_stores.pg.connection() as conn:
        assert await feed_state.save(conn, norm) == 1
        assert (await feed_state.load(conn)).players[21].price_cents == 1200
