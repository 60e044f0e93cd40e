"""The normaliser: a catch-up at a rate per second within caps per second and per poll (hypothesis),
one rating per player per poll, stale snapshots ignored, halts, late revisions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftl.pricing.model import Fixture, LiveSnapshot, MatchEvent, PlayerRating
from ftl.pricing.normalise import (
    FeedState,
    FixtureState,
    Normaliser,
    NormaliserConfig,
    PlayerState,
    catch_up,
    max_move,
    target_cents,
)
from tests.pricing.conftest import states

CFG = NormaliserConfig()
prices = st.integers(min_value=CFG.min_cents, max_value=CFG.max_cents)
any_prices = st.integers(min_value=1, max_value=CFG.max_cents)
ratings = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
gaps_ms = st.integers(min_value=0, max_value=120_000)


def fixture(
    fid: int,
    ratings_by_player: dict[int, float | None],
    *,
    live: bool = True,
    progress: tuple[int, int] | None = None,
    events: tuple[MatchEvent, ...] = (),
) -> Fixture:
    players = tuple(PlayerRating(pid, 100, r) for pid, r in ratings_by_player.items())
    return Fixture(fid, 732, 2 if live else 5, f"F{fid}", players, events, progress)


def snap(*fixtures: Fixture) -> LiveSnapshot:
    return LiveSnapshot(tuple(fixtures))


@given(price=any_prices, target=prices, dt_ms=gaps_ms)
def test_one_poll_moves_at_most_the_cap_and_towards_the_target(price: int, target: int, dt_ms: int) -> None:
    new = catch_up(price, target, dt_ms / 1000, CFG)
    assert abs(new - price) <= max_move(price, dt_ms / 1000, CFG)
    assert abs(new - price) <= price * CFG.max_move_bp_per_poll // 10_000
    assert min(price, target) <= new <= max(price, target)  # never overshoots


@settings(max_examples=200)
@given(
    base=prices,
    start=any_prices,
    steps=st.lists(st.tuples(st.one_of(st.none(), ratings), gaps_ms, st.booleans()), max_size=40),
)
def test_no_sequence_of_snapshots_outruns_the_caps(
    base: int, start: int, steps: list[tuple[float | None, int, bool]]
) -> None:
    """Whatever the ratings (also a player listed twice, in two fixtures), each poll moves the
    index by at most the per-poll cap and the per-second cap times the time since the last poll;
    so a sequence moves it by at most the per-second cap (of its highest price) times the time."""
    norm = Normaliser.from_states({7: PlayerState(70, base, start)}, last_step_ms=0)
    now, highest, price = 0, start, start
    for rating, gap, twice in steps:
        now += gap
        fixtures = [fixture(1, {7: rating})]
        if twice:
            fixtures.append(fixture(2, {7: None if rating is None else 10 - rating}))
        norm.step(snap(*fixtures), now)
        new = norm.players[7].price_cents
        assert abs(new - price) <= max_move(price, gap / 1000, CFG)
        price, highest = new, max(highest, new)
        if start >= CFG.min_cents:
            assert CFG.min_cents <= price <= CFG.max_cents
    assert abs(price - start) <= highest * CFG.max_move_bp_per_s * now / 1000 / 10_000 + 1e-9


@given(base=prices, rating=ratings)
def test_the_price_converges_to_the_target_and_then_stays(base: int, rating: float) -> None:
    norm = Normaliser.from_states({7: PlayerState(70, base, base)}, last_step_ms=0)
    norm.step(snap(fixture(1, {7: rating})), 2000)
    for i in range(2, 400):
        norm.step(snap(fixture(1, {7: rating}, live=False)), 2000 * i)  # full time: no new ratings
    assert norm.players[7].price_cents == target_cents(base, rating, CFG)
    assert norm.step(snap(), 2000 * 400) == []  # at rest: no changes, no ticks


def test_the_path_does_not_depend_on_how_the_rating_arrives() -> None:
    """6.5 → 8.5 in one step, or in four small steps: the price moves with time towards the
    target of the latest rating, so both end at the same price; and the ramp never outruns the
    jump. (The old rule moved only on a rating change: a rating that stopped changing froze the
    price wherever the cap had left it.)"""
    jump, ramp = (Normaliser.from_states(states(1), last_step_ms=0) for _ in range(2))
    for t in range(1, 30):
        jump.step(snap(fixture(1, {1: 8.5})), 2000 * t)
        ramp.step(snap(fixture(1, {1: min(8.5, 6.5 + 0.5 * t)})), 2000 * t)
        assert ramp.players[1].price_cents <= jump.players[1].price_cents
    assert jump.players[1].price_cents == ramp.players[1].price_cents == target_cents(1000, 8.5, CFG)


def test_a_jump_is_caught_up_within_the_per_second_cap() -> None:
    """The review's case: 6.5 → 8.5, then -0.05 a poll. The old rule closed 2 % of the gap per
    rating change (11 rising ticks, 1020 → 1238, and stuck short of the target); now the price
    climbs at the per-second cap (6 % a 2-s poll) and then follows the falling target."""
    norm = Normaliser.from_states(states(1), last_step_ms=0)
    rating, prices = 8.5, [1000]
    for t in range(1, 20):
        norm.step(snap(fixture(1, {1: rating})), 2000 * t)
        prices.append(norm.players[1].price_cents)
        rating -= 0.05
    rises = sum(1 for a, b in itertools.pairwise(prices) if b > a)
    assert rises <= 10  # about 17 s at 3 %/s for a 65 % gap
    target = target_cents(1000, rating + 0.05, CFG)
    assert abs(prices[-1] - target) <= target * 0.03  # then within a few % of the moving target
    assert prices[-1] < max(prices)  # and following it down


def test_a_stale_snapshot_is_ignored() -> None:
    """Ratings 7.0, 7.5, 7.0 (an older snapshot from a lagging cache), 7.5: the stale one moves
    nothing, so the prices are those of 7.0, 7.5, 7.5, 7.5."""
    seq = [(7.0, (1, 600)), (7.5, (1, 620)), (7.0, (1, 600)), (7.5, (1, 640))]
    norm = Normaliser.from_states(states(1), last_step_ms=0)
    clean = Normaliser.from_states(states(1), last_step_ms=0)
    for i, (rating, progress) in enumerate(seq, start=1):
        norm.step(snap(fixture(1, {1: rating}, progress=progress)), 2000 * i)
        clean.step(snap(fixture(1, {1: 7.0 if i == 1 else 7.5}, progress=progress)), 2000 * i)
        assert norm.players[1].price_cents == clean.players[1].price_cents
    assert norm.stale_fixtures == 0 and norm.players[1].rating == 7.5


def test_a_player_listed_twice_moves_once_by_his_live_fixture() -> None:
    norm = Normaliser.from_states(states(1), last_step_ms=0)
    changes = norm.step(snap(fixture(1, {1: 5.0}, live=False), fixture(2, {1: 9.0})), 2000)
    assert [c.player_id for c in changes] == [1]
    assert norm.players[1].rating == 9.0


def test_out_of_bound_start_prices_come_back_within_the_caps() -> None:
    norm = Normaliser.from_states({1: PlayerState(10, 500, 50)}, last_step_ms=0)
    norm.step(snap(), 2000)
    assert norm.players[1].price_cents == 50 + max_move(50, 2.0, CFG)  # 50 → 53, not a jump to 100


def test_unknown_players_are_ignored_and_counted() -> None:
    norm = Normaliser.from_states(states(1), last_step_ms=0)
    changes = norm.step(snap(fixture(1, {1: 7.0, 77: 8.0, 88: 5.0})), 2000)
    assert [c.player_id for c in changes] == [1]
    assert norm.unknown_players == 2


def goal(eid: int, type_id: int = 14) -> MatchEvent:
    return MatchEvent(eid, type_id, 1, 10)


def test_a_goal_halts_the_fixture_then_resumes() -> None:
    norm = Normaliser.from_states(states(1, 2, 3), NormaliserConfig(halt_ms=5000))
    norm.step(snap(fixture(10, {1: None, 2: None}), fixture(11, {3: None})), 1000)
    changes = norm.step(
        snap(fixture(10, {1: None, 2: None}, events=(goal(1),)), fixture(11, {3: None})), 2000
    )
    assert {c.player_id for c in changes} == {1, 2}
    assert all(c.halt_until_ms == 7000 and c.status == "halted" and not c.repriced for c in changes)
    again = snap(fixture(10, {1: None, 2: None}, events=(goal(1),)), fixture(11, {3: None}))
    assert norm.step(again, 4000) == []  # still halted, nothing new
    resumed = norm.step(again, 7000)
    assert {c.player_id for c in resumed} == {1, 2} and all(c.status == "open" for c in resumed)
    assert norm.step(again, 9000) == []  # the same goal does not halt twice


def test_events_before_first_sight_and_other_types_do_not_halt() -> None:
    norm = Normaliser.from_states(states(1))
    assert norm.step(snap(fixture(10, {1: None}, events=(goal(1),))), 1000) == []  # history
    assert norm.step(snap(fixture(10, {1: None}, events=(goal(1), goal(2, 19)))), 2000) == []  # yellow
    (c,) = norm.step(snap(fixture(10, {1: None}, events=(goal(1), goal(2, 19), goal(3, 20)))), 3000)
    assert c.halt_until_ms == 3000 + CFG.halt_ms  # a red card halts


def test_a_late_revision_within_the_bound_moves_without_a_halt_beyond_it_halts() -> None:
    norm = Normaliser.from_states(states(1, 2), last_step_ms=0)
    norm.step(snap(fixture(1, {1: 7.0, 2: 7.0})), 2000)
    changes = norm.step(snap(fixture(1, {1: 7.3, 2: 8.0}, live=False)), 4000)  # after full time
    by_player = {c.player_id: c for c in changes}
    assert by_player[1].halt_until_ms is None
    assert by_player[2].halt_until_ms == 4000 + CFG.halt_ms and by_player[2].repriced


def test_the_state_round_trips_through_resume() -> None:
    norm = Normaliser.from_states(states(1), last_step_ms=0)
    norm.step(snap(fixture(1, {1: 8.0}, progress=(1, 300), events=(goal(5),))), 2000)
    copy = Normaliser.resume(FeedState(
        {k: PlayerState(v.instrument_id, v.base_cents, v.price_cents, v.rating, v.halt_until_ms)
         for k, v in norm.players.items()},
        dict(norm.fixtures), norm.last_step_ms,
    ))  # fmt: skip
    for t in range(2, 8):
        a = norm.step(snap(fixture(1, {1: 8.0 - t / 10}, progress=(1, 300 + t))), 2000 * t)
        b = copy.step(snap(fixture(1, {1: 8.0 - t / 10}, progress=(1, 300 + t))), 2000 * t)
        assert a == b


def test_bad_config_is_refused() -> None:
    for kwargs in ({"half_life_s": 0.0}, {"max_move_bp_per_s": 0}, {"min_cents": 0}, {"halt_ms": -1}):
        with pytest.raises(ValueError, match=r"must|need"):
            NormaliserConfig(**kwargs)  # type: ignore[arg-type]


def test_prices_by_instrument() -> None:
    norm = Normaliser.from_states({5: PlayerState(50, 900, 950)})
    assert norm.prices() == {50: 950}


def _restarted(norm: Normaliser) -> Normaliser:
    """A new leader: a normaliser resumed from a copy of ``norm``'s state (as feed_state keeps it)."""
    return Normaliser.resume(
        FeedState(
            {k: PlayerState(v.instrument_id, v.base_cents, v.price_cents, v.rating, v.halt_until_ms)
             for k, v in norm.players.items()},
            {k: FixtureState(v.progress, set(v.seen_events)) for k, v in norm.fixtures.items()},
            norm.last_step_ms,
        ),
        norm.cfg,
    )  # fmt: skip


def test_a_goal_in_the_first_poll_after_a_restart_halts() -> None:
    norm = Normaliser.from_states(states(1), last_step_ms=0)
    norm.step(snap(fixture(10, {1: 7.0})), 2000)
    after = _restarted(norm)
    (c,) = after.step(snap(fixture(10, {1: 7.0}, events=(goal(1),))), 4000)
    assert c.halt_until_ms == 4000 + CFG.halt_ms  # the fixture is known: the goal is news


def test_a_restart_during_a_halt_lifts_it_on_time() -> None:
    norm = Normaliser.from_states(states(1), last_step_ms=0)
    norm.step(snap(fixture(10, {1: None})), 2000)
    norm.step(snap(fixture(10, {1: None}, events=(goal(1),))), 4000)
    after = _restarted(norm)
    assert after.step(snap(fixture(10, {1: None}, events=(goal(1),))), 6000) == []  # still halted
    (c,) = after.step(snap(fixture(10, {1: None}, events=(goal(1),))), 4000 + CFG.halt_ms)
    assert c.status == "open" and c.halt_until_ms is None
