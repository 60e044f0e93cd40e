"""The replay feed: same parsing and normalisation as the live client; the bundled demo data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ftl.pricing import demo
from ftl.pricing.feed import Feed, open_feed
from ftl.pricing.model import HALT_EVENT_TYPES, IndexChange
from ftl.pricing.normalise import Normaliser
from ftl.pricing.parse import parse_livescores
from ftl.pricing.poller import Poller, PollerConfig, PollerMetrics
from ftl.pricing.replay import ReplayFeed, ReplayFrame, load_frames, resolve_path
from ftl.pricing.sportmonks import SportmonksClient
from scripts import make_demo_data, make_et_replay
from tests.pricing.conftest import FakeTime
from tests.pricing.fake_sportmonks import TOKEN, FakeSportmonks, Reply

pytestmark = pytest.mark.anyio


def _poller(feed: Feed, fake_time: FakeTime, metrics: PollerMetrics, changes: list[IndexChange]) -> Poller:
    async def apply(batch: list[IndexChange]) -> None:
        changes.extend(batch)

    return Poller(
        feed,
        Normaliser.from_states(demo.states_from_squads(demo.load_squads())),
        apply,
        config=PollerConfig(),
        clock=fake_time.clock,
        wall_ms=fake_time.wall_ms,
        sleep=fake_time.sleep,
        rng=random.Random(1),
        metrics=metrics,
    )


ET_REPLAY = demo.data_path(make_et_replay.OUT_NAME)


@pytest.mark.parametrize("path", [demo.replay_path(), ET_REPLAY], ids=["90_minutes", "et_penalties"])
async def test_replay_and_live_client_produce_identical_index_series(
    fake: FakeSportmonks, metrics: PollerMetrics, path: Path
) -> None:
    """The live client (states from the fake's /states, periods over HTTP) and the replay feed
    (the fallback state ids) give the same changes."""
    frames = load_frames(path)
    start = 1_781_204_400.0
    live_time, replay_time = FakeTime(start), FakeTime(start)
    live_changes: list[IndexChange] = []
    replay_changes: list[IndexChange] = []
    client = SportmonksClient(fake.url, TOKEN)
    replay = ReplayFeed(frames, clock=replay_time.clock)
    live_poller = _poller(client, live_time, metrics, live_changes)
    replay_poller = _poller(replay, replay_time, metrics, replay_changes)
    fake.push(*(Reply(body=f.response) for f in frames))
    assert replay.match_time() == 0.0  # kickoff is now
    try:
        for frame in frames:
            live_time.now = replay_time.now = start + frame.at_s + 0.001  # clear of float rounding
            await live_poller.poll_once()
            await replay_poller.poll_once()
            assert replay.frames[replay.last_index] is frame
    finally:
        await client.aclose()
    assert len(fake.livescores_requests()) == len(frames)
    assert len(fake.states_requests()) == 1  # fetched once, cached
    assert client.state_cache.registry.from_source
    assert len(live_changes) > 100
    assert live_changes == replay_changes
    assert live_poller.normaliser.prices() == replay_poller.normaliser.prices()


async def test_bundled_match_moves_prices_halts_on_events_and_ends_idle(metrics: PollerMetrics) -> None:
    fake_time = FakeTime()
    feed = ReplayFeed.from_spec("bundled", speed=10.0, clock=fake_time.clock)
    changes: list[IndexChange] = []
    poller = _poller(feed, fake_time, metrics, changes)
    start_prices = poller.normaliser.prices()
    delays = []
    while feed.match_time() <= feed.duration_s + 10:
        delay = await poller.poll_once()
        delays.append(delay)
        await fake_time.sleep(delay)
    assert delays[-1] == PollerConfig().idle_interval_s and not poller.live
    repriced = {c.instrument_id for c in changes if c.repriced}
    assert len(repriced) == 2 * 14  # both squads' players who played (11 + 3 subs), nobody else
    halts = {c.halt_until_ms for c in changes if c.halt_until_ms is not None}
    assert len(halts) == 4  # two goals, a red card, a penalty
    end_prices = poller.normaliser.prices()
    moved = [iid for iid in repriced if end_prices[iid] != start_prices[iid]]
    assert len(moved) >= 20
    assert all(100 <= c.index_cents <= 100_000 for c in changes)
    assert poller.failures == 0


async def test_replay_loops_and_clamps() -> None:
    t = FakeTime(0.0)
    frames = [ReplayFrame(0.0, {"data": []}), ReplayFrame(10.0, {"data": [], "timezone": "UTC"})]
    feed = ReplayFeed(frames, clock=t.clock, loop=True)
    assert (await feed.fetch()).timezone is None
    t.now = 10.0
    assert (await feed.fetch()).timezone == "UTC"
    t.now = 11.5  # past the end: starts over
    assert (await feed.fetch()).timezone is None
    once = ReplayFeed(frames, clock=t.clock, speed=2.0)
    assert (await once.fetch()).timezone is None  # the clock starts at the first fetch
    t.now += 100
    assert (await once.fetch()).timezone == "UTC"  # stays on the last frame
    await once.aclose()


@pytest.mark.parametrize(
    "content",
    [
        "{}",
        "[]",
        '[{"at_s": -1, "response": {}}]',
        '[{"at_s": 1}]',
        '[{"at_s": 5, "response": {}}, {"at_s": 1, "response": {}}]',
    ],
)
def test_bad_match_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "match.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"match\.json"):
        load_frames(path)


def test_feed_setting() -> None:
    assert open_feed("off", sportmonks_url="http://x", sportmonks_token=None) is None
    replay = open_feed("replay:bundled", sportmonks_url="http://x", sportmonks_token=None)
    assert isinstance(replay, ReplayFeed) and replay.loop
    assert isinstance(
        open_feed("sportmonks", sportmonks_url="http://x", sportmonks_token="t"), SportmonksClient
    )
    with pytest.raises(ValueError, match="TOKEN"):
        open_feed("sportmonks", sportmonks_url="http://x", sportmonks_token=None)
    with pytest.raises(ValueError, match="FTL_FEED"):
        open_feed("replay:", sportmonks_url="http://x", sportmonks_token=None)
    assert resolve_path("bundled") == demo.replay_path()
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed([ReplayFrame(0.0, {})], speed=0)


def test_squads_file() -> None:
    players = demo.load_squads()
    teams: dict[int, list[demo.SquadPlayer]] = {}
    for p in players:
        teams.setdefault(p.team_id, []).append(p)
    assert len(teams) == 48 and all(len(squad) == 26 for squad in teams.values())
    assert len({p.player_id for p in players}) == 48 * 26
    assert len({p.team for p in players}) == 48
    assert all(100 <= p.index_price <= 100_000 and p.name.strip() for p in players)
    for squad in teams.values():
        positions = [p.position for p in squad]
        assert positions.count("Goalkeeper") == 3 and positions.count("Attacker") == 7
    states = demo.states_from_squads(players, {players[0].player_id: 1})
    assert states[players[0].player_id].instrument_id == 1
    assert states[players[1].player_id].instrument_id == players[1].player_id


def test_bundled_files_are_what_the_script_makes() -> None:
    squads = make_demo_data.make_squads(random.Random(make_demo_data.SEED))
    frames = make_demo_data.make_replay(squads, random.Random(make_demo_data.SEED + 1))
    assert json.loads(demo.squads_path().read_text(encoding="utf-8")) == squads
    assert json.loads(demo.replay_path().read_text(encoding="utf-8")) == frames
    assert demo.replay_path().stat().st_size < 3_000_000
    squad_ids = {p.player_id for p in demo.load_squads()}
    match_ids = {p.player_id for f in load_frames(demo.replay_path()) for fx in _fixtures(f) for p in fx}
    assert match_ids <= squad_ids and len(match_ids) == 2 * 14


def _fixtures(frame: ReplayFrame) -> list[list[demo.SquadPlayer]]:
    snap = parse_livescores(frame.response)
    return [list(fx.players) for fx in snap.fixtures]  # type: ignore[arg-type]


def test_extra_time_and_penalties_replay_halts_on_every_goal_var_decision_and_kick() -> None:
    """The recorded ET + penalties match through the real parser and normaliser: live through
    both halves of extra time, the breaks and the shoot-out; a halt starts exactly at each frame
    that brings a new goal, VAR decision or shoot-out kick; progress never goes back (no frame is
    dropped as stale)."""
    frames = load_frames(ET_REPLAY)
    normaliser = Normaliser.from_states(demo.states_from_squads(demo.load_squads()))
    start_ms = 1_784_487_600_000
    seen: set[int] = set()
    states_seen: dict[int, bool] = {}
    halts_at: list[float] = []
    new_halting_at: list[float] = []
    halting_types: list[int] = []
    repriced_in: set[int] = set()
    last_progress: tuple[int, int] | None = None
    progress_in: dict[int, set[tuple[int, int] | None]] = {}
    for i, frame in enumerate(frames):
        snap = parse_livescores(frame.response)
        (fx,) = snap.fixtures
        assert snap.bad_values == ()
        states_seen[fx.state_id] = fx.live
        progress_in.setdefault(fx.state_id, set()).add(fx.progress)
        if fx.progress is not None:
            assert last_progress is None or fx.progress >= last_progress
            last_progress = fx.progress
        now_ms = start_ms + round(frame.at_s * 1000)
        changes = normaliser.step(snap, now_ms)
        assert normaliser.stale_fixtures == 0
        new = [e for e in fx.events if e.id not in seen]
        seen.update(e.id for e in fx.events)
        if i > 0 and any(e.type_id in HALT_EVENT_TYPES for e in new):
            new_halting_at.append(frame.at_s)
            halting_types += [e.type_id for e in new if e.type_id in HALT_EVENT_TYPES]
        started = [c for c in changes if c.halt_until_ms == now_ms + normaliser.cfg.halt_ms]
        if started:
            assert len(started) == 22  # every player of the fixture
            halts_at.append(frame.at_s)
        if any(c.repriced for c in changes):
            repriced_in.add(fx.state_id)
    live_by_state = {2: True, 3: True, 22: True, 5: False, 4: True, 6: True, 21: True, 23: True}
    assert states_seen == live_by_state | {25: True, 9: True, 8: False}
    assert sorted(halting_types) == sorted([14] * 4 + [10] * 2 + [23] * 7 + [22] * 3)
    assert halts_at == new_halting_at and len(halts_at) == 16
    assert {6, 23, 9} <= repriced_in  # prices move in extra time and during the shoot-out
    # breaks stand at the start of the next period; the ET break on the clock of extra time's period
    assert progress_in[3] == {(2, 0)} and progress_in[5] == progress_in[4] == {(3, 0)}
    assert progress_in[21] == {(3, 105 * 60)} and progress_in[25] == {(4, 0)}
    assert progress_in[9] == {(4, 120 * 60)} and progress_in[8] == {(5, 0)}
    assert None not in set().union(*progress_in.values())


def test_the_et_replay_is_what_the_script_makes() -> None:
    assert json.loads(ET_REPLAY.read_text(encoding="utf-8")) == make_et_replay.make()
    assert ET_REPLAY.stat().st_size < 3_000_000
