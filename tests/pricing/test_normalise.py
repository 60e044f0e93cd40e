"""The normaliser: formula properties (hypothesis), no move without a rating change, halts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftl.pricing.model import LiveSnapshot
from ftl.pricing.normalise import (
    Normaliser,
    NormaliserConfig,
    PlayerState,
    capped,
    next_price,
    target_cents,
)
from ftl.pricing.parse import parse_livescores
from tests.pricing import shape
from tests.pricing.conftest import states
from tests.pricing.fake_sportmonks import Match, body

CFG = NormaliserConfig()
prices = st.integers(min_value=CFG.min_cents, max_value=CFG.max_cents)
ratings = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
configs = st.builds(
    NormaliserConfig,
    smoothing=st.floats(min_value=0.01, max_value=1.0),
    max_move_bp=st.integers(min_value=1, max_value=5000),
    sensitivity=st.floats(min_value=0.0, max_value=2.0),
)


@given(price=prices, base=prices, smoothed=ratings, cfg=configs)
def test_move_is_capped_and_bounded(price: int, base: int, smoothed: float, cfg: NormaliserConfig) -> None:
    new = next_price(price, base, smoothed, cfg)
    assert abs(new - price) <= max(1, price * cfg.max_move_bp // 10_000)
    assert cfg.min_cents <= new <= cfg.max_cents


@given(price=st.integers(min_value=-(10**9), max_value=10**9), target=st.integers(-(10**9), 10**9))
def test_out_of_bounds_input_comes_back_within_bounds(price: int, target: int) -> None:
    assert CFG.min_cents <= capped(price, target, CFG) <= CFG.max_cents


@given(price=prices, base=prices, r1=ratings, r2=ratings)
def test_price_moves_towards_the_target(price: int, base: int, r1: float, r2: float) -> None:
    new = next_price(price, base, r1, CFG)
    target = target_cents(base, r1, CFG)
    bounded = min(max(target, CFG.min_cents), CFG.max_cents)
    assert min(price, bounded) <= new <= max(price, bounded)
    if r2 > r1:  # a better smoothed rating never points lower
        assert target_cents(base, r2, CFG) >= target


def _snapshot(*matches: Match) -> LiveSnapshot:
    return parse_livescores(body(*matches))


@settings(max_examples=50)
@given(seq=st.lists(st.one_of(st.none(), st.sampled_from([5.5, 6.0, 6.5, 7.25, 8.0])), max_size=25))
def test_no_change_without_a_new_rating(seq: list[float | None]) -> None:
    norm = Normaliser.from_states(states(1, 2))
    match = Match(1, [1], [2])
    last: float | None = None
    for i, rating in enumerate(seq):
        match.ratings[1] = rating
        before = norm.players[1].price_cents
        changes = norm.step(_snapshot(match), 1000 * i)
        moved = [c for c in changes if c.player_id == 1]
        if rating is None or rating == last:
            assert moved == [] and norm.players[1].price_cents == before
        else:
            assert len(moved) == 1 and moved[0].rating == rating and moved[0].repriced
            assert abs(moved[0].index_cents - before) <= max(1, before * CFG.max_move_bp // 10_000)
            last = rating
        assert norm.players[2].price_cents == 1000  # never rated: keeps his price


def test_a_higher_rating_raises_the_price_and_smooths() -> None:
    norm = Normaliser.from_states(states(1))
    match = Match(1, [1], [])
    match.rate(p1=7.5)
    (c,) = norm.step(_snapshot(match), 1)
    # s = 6.5 + 0.3 (7.5 - 6.5) = 6.8 → target 1000·e^(0.25·0.3) = 1078 → capped at +2 %: 1020
    assert norm.players[1].smoothed is not None and abs(norm.players[1].smoothed - 6.8) < 1e-9
    assert c.index_cents == 1020 and c.halt_until_ms is None and c.status == "open"


def test_unknown_players_are_ignored_and_counted() -> None:
    norm = Normaliser.from_states(states(1))
    match = Match(1, [1, 77], [88])
    match.rate(p1=7.0, p77=8.0, p88=5.0)
    changes = norm.step(_snapshot(match), 1)
    assert [c.player_id for c in changes] == [1]
    assert norm.unknown_players == 2


def test_a_goal_halts_the_fixture_then_resumes() -> None:
    cfg = NormaliserConfig(halt_ms=5000)
    norm = Normaliser.from_states(states(1, 2, 3), cfg)
    match, other = Match(10, [1], [2]), Match(11, [3], [])
    match.rate(p1=6.6, p2=6.6)
    other.rate(p3=6.6)
    norm.step(_snapshot(match, other), 1000)
    match.goal(1, minute=12)
    changes = norm.step(_snapshot(match, other), 2000)  # ratings unchanged: halt only
    assert {c.player_id for c in changes} == {1, 2}
    assert all(c.halt_until_ms == 7000 and c.status == "halted" and not c.repriced for c in changes)
    assert all(c.index_cents == norm.players[c.player_id].price_cents for c in changes)
    assert norm.step(_snapshot(match, other), 4000) == []  # still halted, nothing new
    resumed = norm.step(_snapshot(match, other), 7000)
    assert {c.player_id for c in resumed} == {1, 2}
    assert all(c.halt_until_ms is None and c.status == "open" for c in resumed)
    assert norm.step(_snapshot(match, other), 9000) == []  # the same goal does not halt twice


def test_events_before_first_sight_and_other_types_do_not_halt() -> None:
    norm = Normaliser.from_states(states(1))
    match = Match(10, [1], [])
    match.goal(1, minute=3)  # already there when the poller starts: history
    assert norm.step(_snapshot(match), 1000) == []
    match.goal(1, minute=30, type_id=19)  # a yellow card does not halt
    assert norm.step(_snapshot(match), 2000) == []
    match.goal(1, minute=40, type_id=20)  # a red card does
    (c,) = norm.step(_snapshot(match), 3000)
    assert c.halt_until_ms == 3000 + NormaliserConfig().halt_ms


def test_rating_change_during_a_halt_keeps_the_halt() -> None:
    norm = Normaliser.from_states(states(1), NormaliserConfig(halt_ms=5000))
    match = Match(10, [1], [])
    norm.step(_snapshot(match), 0)
    match.goal(1, minute=5, type_id=16)
    match.rate(p1=7.9)
    (c,) = norm.step(_snapshot(match), 1000)
    assert c.repriced and c.index_cents > 1000 and c.halt_until_ms == 6000


def test_bad_config_is_refused() -> None:
    for kwargs in ({"smoothing": 0.0}, {"max_move_bp": 0}, {"min_cents": 0}, {"halt_ms": -1}):
        with pytest.raises(ValueError, match=r"must|need"):
            NormaliserConfig(**kwargs)


def test_prices_by_instrument() -> None:
    norm = Normaliser.from_states({5: PlayerState(50, 900, 950)})
    assert norm.prices() == {50: 950}
    assert shape.RATING_TYPE["id"] == 118
