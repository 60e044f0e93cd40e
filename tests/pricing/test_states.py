"""The state registry: live or not from Sportmonks' states list, the fallback ids, the cache."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftl.pricing.errors import MalformedResponse, ServerError
from ftl.pricing.model import LIVE_STATES, Fixture
from ftl.pricing.parse import parse_livescores
from ftl.pricing.states import (
    FALLBACK,
    MatchState,
    StateCache,
    StateRegistry,
    is_live_name,
    parse_states,
)
from tests.pricing import shape
from tests.pricing.fake_sportmonks import Match, body

pytestmark = pytest.mark.anyio

CATALOGUE = parse_states(shape.states_page(shape.catalogue(), per_page=100))
LIVE_NAMES = {
    "INPLAY_1ST_HALF",
    "HT",
    "INPLAY_2ND_HALF",
    "BREAK",
    "INPLAY_ET",
    "EXTRA_TIME_BREAK",
    "INPLAY_ET_SECOND_HALF",
    "PEN_BREAK",
    "INPLAY_PENALTIES",
}
names = st.one_of(
    st.sampled_from([s.developer_name for s in CATALOGUE] + ["INPLAY_ET_2ND_HALF", "INPLAY_GOLDEN_GOAL"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_12", max_size=24),
)


def test_the_catalogue_live_states_are_play_and_breaks_inside_the_match() -> None:
    registry = StateRegistry(CATALOGUE)
    assert {s.developer_name for s in CATALOGUE if s.live} == LIVE_NAMES
    assert registry.live_ids == {2, 3, 4, 6, 9, 21, 22, 23, 25}
    assert (
        not {s.id for s in CATALOGUE if s.developer_name in ("NS", "FT", "AET", "FT_PEN")} & registry.live_ids
    )


def test_the_fallback_ids_include_extra_time_and_penalties_and_agree_with_the_catalogue() -> None:
    assert {6, 21, 23} <= LIVE_STATES  # extra time, its break, its 2nd half
    assert {25, 9} <= LIVE_STATES  # the break before penalties, the shoot-out
    assert not {1, 5, 7, 8} & LIVE_STATES  # not started, finished (90', after extra time, penalties)
    assert StateRegistry(CATALOGUE).disagreements() == []
    assert FALLBACK.live_ids == LIVE_STATES and not FALLBACK.from_source


def test_either_spelling_of_extra_time_second_half_is_live() -> None:
    assert is_live_name("INPLAY_ET_SECOND_HALF") and is_live_name("INPLAY_ET_2ND_HALF")
    assert is_live_name(" inplay_et ") and not is_live_name("AWAITING_UPDATES")


@given(name=names)
def test_live_means_in_play_or_a_break_inside_the_match(name: str) -> None:
    assert is_live_name(name) == (
        name.startswith("INPLAY_") or name in {"HT", "BREAK", "EXTRA_TIME_BREAK", "PEN_BREAK"}
    )


@given(
    listed=st.lists(st.tuples(st.integers(0, 40), names), unique_by=lambda t: t[0], max_size=30),
    state_id=st.integers(0, 40),
)
def test_a_listed_state_decides_by_name_any_other_by_the_fallback(
    listed: list[tuple[int, str]], state_id: int
) -> None:
    registry = StateRegistry(MatchState(i, n, n, n, n) for i, n in listed)
    by_id = dict(listed)
    expected = is_live_name(by_id[state_id]) if state_id in by_id else state_id in LIVE_STATES
    assert registry.is_live(state_id) is expected
    assert (state_id in registry.live_ids) is expected


@given(subset=st.permutations(CATALOGUE).flatmap(lambda p: st.integers(0, len(p)).map(lambda n: p[:n])))
def test_any_part_of_the_real_list_gives_the_fallback_verdicts(subset: list[MatchState]) -> None:
    registry = StateRegistry(subset)
    assert all(registry.is_live(i) == (i in LIVE_STATES) for i in range(0, 40))


def test_parse_states_skips_odd_entries_and_refuses_a_body_without_data() -> None:
    page = shape.states_page(
        [shape.state(2, "INPLAY_1ST_HALF"), {"id": "3", "developer_name": "HT"}, {"id": 4}]
    )
    page["data"].append(7)
    assert [(s.id, s.developer_name) for s in parse_states(page)] == [(2, "INPLAY_1ST_HALF")]
    bodies: list[Any] = [{"message": "no data"}, {"data": "x"}, [], None]
    for bad in bodies:
        with pytest.raises(MalformedResponse):
            parse_states(bad)


def test_the_parser_takes_the_registry_verdict() -> None:
    match = Match(5, [1], [2])
    match.state_id = 99
    snap = parse_livescores(body(match))
    assert not snap.fixtures[0].live and not snap.any_live  # unknown id, not a fallback id
    registry = StateRegistry([MatchState(99, "X", "Golden goal", "GG", "INPLAY_GOLDEN_GOAL")])
    snap = parse_livescores(body(match), states=registry)
    assert snap.fixtures[0].live and snap.fixtures[0].state_live is True and snap.any_live
    match.state_id = 23
    assert parse_livescores(body(match)).fixtures[0].live  # extra time, 2nd half


def test_a_fixture_built_without_a_verdict_uses_the_fallback_ids() -> None:
    assert Fixture(1, 732, 23, "", (), ()).live
    assert not Fixture(1, 732, 5, "", (), ()).live
    assert not Fixture(1, 732, 23, "", (), (), None, False).live


class Source:
    def __init__(self) -> None:
        self.calls = 0
        self.result: list[MatchState] | Exception = CATALOGUE

    async def __call__(self) -> list[MatchState]:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_the_cache_fetches_once_then_refreshes_and_survives_failures() -> None:
    now = [0.0]
    source = Source()
    cache = StateCache(source, refresh_s=86_400, retry_s=300, clock=lambda: now[0])
    assert cache.registry is FALLBACK
    first = await cache.get()
    assert first.from_source and source.calls == 1 and cache.fetched_at == 0.0
    now[0] = 86_399.0
    assert await cache.get() is first and source.calls == 1
    now[0] = 86_400.0
    source.result = ServerError(502)
    assert await cache.get() is first  # a failed refresh keeps the list
    assert source.calls == 2 and cache.failures == 1
    now[0] += 299
    await cache.get()
    assert source.calls == 2  # retried only after retry_s
    now[0] += 1
    source.result = [MatchState(2, "INPLAY_1ST_HALF", "1st Half", "1st", "INPLAY_1ST_HALF")]
    second = await cache.get()
    assert second is not first and source.calls == 3 and cache.failures == 0
    assert second.is_live(2) and second.is_live(23)  # 23 is not listed: the fallback decides


async def test_an_empty_or_failing_first_fetch_leaves_the_fallback() -> None:
    now = [0.0]
    source = Source()
    source.result = []
    cache = StateCache(source, retry_s=60, clock=lambda: now[0])
    assert await cache.get() is FALLBACK and cache.failures == 1
    source.result = MalformedResponse("x")
    now[0] = 60.0
    assert await cache.get() is FALLBACK and cache.failures == 2 and source.calls == 2
