"""The livescores parser: a bad value drops one player's rating (with its reason), a structural
fault rejects the response, progress from the ``periods`` include."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftl.pricing.errors import MalformedResponse
from ftl.pricing.parse import (
    REASONS,
    parse_livescores,
    parse_livescores_bytes,
    parse_progress,
    rating_fault,
)
from tests.pricing import shape
from tests.pricing.fake_sportmonks import Match, body

KICKOFF = 1_781_805_600


def three_players() -> tuple[Match, dict[str, Any]]:
    match = Match(5, [1, 2], [3])
    match.rate(p1=6.85, p2=6.9, p3=7.1)
    return match, match.json()


def parsed(fx: dict[str, Any]) -> tuple[dict[int, float | None], tuple[str, ...]]:
    snap = parse_livescores(shape.envelope([fx]))
    return {p.player_id: p.rating for p in snap.fixtures[0].players}, snap.bad_values


def set_value(fx: dict[str, Any], index: int, value: Any) -> None:
    fx["lineups"][index]["details"][0]["data"]["value"] = value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "null"),
        ("6.85", "not_a_number"),
        ("", "not_a_number"),
        (True, "not_a_number"),
        ({"value": 7}, "not_a_number"),
        ([7.0], "not_a_number"),
        (math.nan, "nan"),
        (math.inf, "out_of_range"),
        (-math.inf, "out_of_range"),
        (-0.01, "out_of_range"),
        (10.0001, "out_of_range"),
        (11, "out_of_range"),
    ],
)
def test_a_bad_rating_is_dropped_for_that_player_only(value: Any, reason: str) -> None:
    _, fx = three_players()
    set_value(fx, 1, value)
    assert parsed(fx) == ({1: 6.85, 2: None, 3: 7.1}, (reason,))


@pytest.mark.parametrize("value", [7, 0, 10, 0.0, 10.0, 6.85])
def test_integer_and_boundary_ratings_are_valid(value: float) -> None:
    _, fx = three_players()
    set_value(fx, 0, value)
    ratings, bad = parsed(fx)
    assert ratings[1] == value and isinstance(ratings[1], float) and bad == ()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda fx: fx["lineups"][0]["details"][0]["data"].pop("value"), "null"),
        (lambda fx: fx["lineups"][0]["details"][0].update(data=None), "null"),
        (lambda fx: fx["lineups"][0]["details"][0].update(data="6.85"), "bad_detail"),
        (lambda fx: fx["lineups"][0]["details"].append(5), "bad_detail"),
        (lambda fx: fx["lineups"][0].update(player_id="1"), "bad_player"),
        (lambda fx: fx["lineups"][0].update(player_id=1.0), "bad_player"),
        (lambda fx: fx["lineups"][0].update(team_id=None), "bad_player"),
        (lambda fx: fx["lineups"][0].update(team_id=True), "bad_player"),
    ],
)
def test_a_bad_detail_or_lineup_entry_drops_that_player(mutate: Any, reason: str) -> None:
    _, fx = three_players()
    mutate(fx)
    ratings, bad = parsed(fx)
    assert bad == (reason,)
    assert ratings.get(1) is None and ratings[2] == 6.9 and ratings[3] == 7.1


def test_a_lineup_entry_that_is_not_an_object_is_a_bad_player() -> None:
    _, fx = three_players()
    fx["lineups"].insert(1, "Lionel")
    assert parsed(fx) == ({1: 6.85, 2: 6.9, 3: 7.1}, ("bad_player",))


def test_a_player_with_two_ratings_one_bad_keeps_his_price() -> None:
    _, fx = three_players()
    extra = json.loads(json.dumps(fx["lineups"][0]["details"][0]))
    extra["data"]["value"] = "n/a"
    fx["lineups"][0]["details"].append(extra)
    assert parsed(fx) == ({1: None, 2: 6.9, 3: 7.1}, ("not_a_number",))


def test_an_unmatched_lineup_slot_is_skipped_silently() -> None:
    _, fx = three_players()
    fx["lineups"][0]["player_id"] = None
    assert parsed(fx) == ({2: 6.9, 3: 7.1}, ())


def test_json_nan_and_infinity_in_the_body_are_bad_values_not_a_rejection() -> None:
    _, fx = three_players()
    raw = json.dumps(shape.envelope([fx])).replace("6.85", "NaN").replace("7.1", "-Infinity")
    snap = parse_livescores_bytes(raw)
    assert [p.rating for p in snap.fixtures[0].players] == [None, 6.9, None]
    assert snap.bad_values == ("nan", "out_of_range")


def test_bad_values_of_other_leagues_are_not_reported() -> None:
    ours, theirs = Match(1, [1], []), Match(2, [2], [], league_id=8)
    ours.rate(p1=6.5)
    theirs.rate(p2=6.5)
    page = body(ours, theirs)
    page["data"][1]["lineups"][0]["details"][0]["data"]["value"] = "x"
    snap = parse_livescores(page, {732})
    assert [f.id for f in snap.fixtures] == [1] and snap.bad_values == ()
    assert parse_livescores(page).bad_values == ("not_a_number",)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"message": "no data"}',
        b'{"data": {"id": 1}}',
    ],
)
def test_a_broken_envelope_still_rejects_the_response(raw: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_livescores_bytes(raw)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda fx: fx.pop("lineups"),
        lambda fx: fx.pop("events"),
        lambda fx: fx["lineups"][0].pop("details"),
        lambda fx: fx.update(id="5"),
        lambda fx: fx.update(league_id=None),
        lambda fx: fx["events"].append({"id": "x", "type_id": 14}),
    ],
)
def test_a_partial_or_malformed_fixture_still_rejects_the_response(mutate: Any) -> None:
    match, fx = three_players()
    match.goal(1, minute=3)
    fx = match.json()
    mutate(fx)
    with pytest.raises(MalformedResponse):
        parse_livescores(shape.envelope([match.json(), fx]))


# -- the ratings invariant ---------------------------------------------------------------------

GOOD = st.one_of(
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False),
    st.integers(min_value=0, max_value=10),
)
BAD = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.booleans(),
    st.just(math.nan),
    st.floats(min_value=10.0, exclude_min=True),
    st.floats(max_value=0.0, exclude_max=True),
    st.integers(min_value=11),
    st.integers(max_value=-1),
    st.lists(st.integers(), max_size=2),
)


@given(values=st.lists(st.one_of(GOOD, BAD), min_size=1, max_size=30))
def test_each_bad_value_costs_one_player_his_rating_and_no_one_else(values: list[Any]) -> None:
    match = Match(5, list(range(1, len(values) + 1)), [])
    match.rate(**{f"p{pid}": 5.0 for pid in range(1, len(values) + 1)})
    fx = match.json()
    for i, value in enumerate(values):
        set_value(fx, i, value)
    ratings, bad = parsed(fx)
    faults = [rating_fault(v) for v in values]
    assert bad == tuple(f for f in faults if f is not None)
    assert set(bad) <= set(REASONS)
    for i, (value, fault) in enumerate(zip(values, faults, strict=True)):
        assert ratings[i + 1] == (None if fault is not None else float(value))


# -- progress from the periods include ---------------------------------------------------------


def first_half(**kw: Any) -> dict[str, Any]:
    return shape.period(5, 1, 1, **{"started": KICKOFF, **kw})


def second_half(**kw: Any) -> dict[str, Any]:
    return shape.period(5, 2, 2, **{"started": KICKOFF + 3600, **kw})


@pytest.mark.parametrize(
    ("periods", "progress", "odd"),
    [
        (None, None, False),  # the include is absent (older recordings)
        ([], None, False),  # not started
        ([first_half(ticking=True, minutes=12, seconds=30)], (1, 750), False),
        ([first_half(ticking=True, minutes=12)], (1, 720), False),  # no seconds
        ([first_half(ended=KICKOFF + 2800)], (2, 0), False),  # half time: at the start of the 2nd
        (
            [first_half(ended=KICKOFF + 2800), second_half(ticking=True, minutes=67, seconds=5)],
            (2, 4025),
            False,
        ),
        (  # the 2nd half is listed but has not started: still half time
            [first_half(ended=KICKOFF + 2800, minutes=47, seconds=10), shape.period(5, 2, 2, started=None)],
            (2, 0),
            False,
        ),
        (  # after penalties: past the shoot-out
            [first_half(ended=1), shape.period(5, 4, 5, started=KICKOFF, ended=KICKOFF + 600, minutes=120)],
            (5, 0),
            False,
        ),
        ([first_half(started=None, minutes=3)], None, False),  # listed, not started
        ([shape.period(5, 2, 2, started=KICKOFF)], None, False),  # started, no clock shown yet
        (  # extra-time break: the period stands still at 105:00
            [
                first_half(ended=1),
                second_half(ended=2),
                shape.period(5, 3, 3, started=KICKOFF, minutes=105, seconds=0),
            ],
            (3, 6300),
            False,
        ),
        ([second_half(minutes=50), first_half(ticking=True, minutes=3)], (1, 180), False),  # ticking wins
        ("periods", None, True),
        ([7], None, True),
        ([{"sort_order": "1", "ticking": True, "minutes": 3}], None, True),
        ([first_half(ticking=True, minutes="12")], None, True),
        ([first_half(ticking=True, minutes=-1)], None, True),
        ([first_half(ticking=True, minutes=12, seconds=60)], None, True),
        ([first_half(ticking=True, minutes=12, seconds=1.5)], None, True),
        ([dict(first_half(), started="2026-06-18 19:00:00")], None, True),
        ([first_half(ended="2026-06-18 19:47:00")], None, True),
    ],
)
def test_progress(periods: Any, progress: tuple[int, int] | None, odd: bool) -> None:
    assert parse_progress(periods) == (progress, odd)
    _, fx = three_players()
    if periods is not None:
        fx["periods"] = periods
    snap = parse_livescores(shape.envelope([fx]))
    assert snap.fixtures[0].progress == progress
    assert snap.bad_values == (("bad_period",) if odd else ())
    assert [p.rating for p in snap.fixtures[0].players] == [6.85, 6.9, 7.1]  # never a rejection


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats(allow_nan=True) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
PERIOD = st.fixed_dictionaries(
    {},
    optional={
        "sort_order": st.one_of(st.integers(0, 6), JSONISH),
        "started": st.one_of(st.none(), st.integers(0, 2_000_000_000), JSONISH),
        "ticking": st.one_of(st.booleans(), JSONISH),
        "minutes": st.one_of(st.none(), st.integers(0, 130), JSONISH),
        "seconds": st.one_of(st.none(), st.integers(0, 59), JSONISH),
    },
)


@given(periods=st.one_of(JSONISH, st.lists(st.one_of(PERIOD, JSONISH), max_size=5)))
def test_any_periods_give_a_progress_or_none_never_an_error(periods: Any) -> None:
    progress, odd = parse_progress(periods)
    if progress is not None:
        assert not odd
        sort_order, seconds = progress
        assert isinstance(periods, list)
        assert sort_order in [p["sort_order"] + k for p in periods for k in (0, 1)] and seconds >= 0
