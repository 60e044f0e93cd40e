"""The Sportmonks client against the fake server over real HTTP: the envelope and every fault."""

from __future__ import annotations

import json
import logging

import pytest

from ftl.pricing.errors import (
    ClientError,
    FeedTimeout,
    MalformedResponse,
    RateLimited,
    ServerError,
    Unauthorized,
)
from ftl.pricing.model import HALT_EVENT_TYPES
from ftl.pricing.sportmonks import SportmonksClient
from tests.pricing import shape
from tests.pricing.fake_sportmonks import TOKEN, FakeSportmonks, Match, Reply, body, rate_limited

pytestmark = pytest.mark.anyio


def client(fake: FakeSportmonks, token: str = TOKEN, timeout_s: float = 2.0) -> SportmonksClient:
    return SportmonksClient(fake.url, token, timeout_s=timeout_s)


async def test_parses_ratings_events_and_envelope(fake: FakeSportmonks) -> None:
    match = Match(5, [1, 2], [3])
    match.rate(p1=6.85, p3=7.1)
    match.goal(3, minute=20)
    fake.set_current(body(match, remaining=1234, resets_in_seconds=77))
    sm = client(fake)
    try:
        snap = await sm.livescores()
    finally:
        await sm.aclose()
    (fx,) = snap.fixtures
    assert fx.id == 5 and fx.live and fx.league_id == 732
    assert {p.player_id: p.rating for p in fx.players} == {1: 6.85, 2: None, 3: 7.1}
    assert [(e.type_id, e.player_id, e.minute) for e in fx.events] == [(14, 3, 20)]
    assert snap.rate_limit is not None
    assert (snap.rate_limit.remaining, snap.rate_limit.resets_in_seconds) == (1234, 77)
    assert snap.rate_limit.requested_entity == "Fixture"
    seen = fake.requests[-1]
    assert seen.path == "/v3/football/livescores/inplay"
    assert seen.headers["Authorization"] == TOKEN
    assert seen.query["include"] == ["lineups.details.type;events;periods"]
    assert seen.query["filters"] == [
        "fixtureLeagues:732;lineupDetailTypes:118;eventTypes:" + ",".join(map(str, sorted(HALT_EVENT_TYPES)))
    ]
    assert "eventTypes:10,14,15,16,17,20,21,22,23" in seen.query["filters"][0]  # VAR, shoot-out kicks
    assert "api_token" not in seen.query  # the token travels in the header only
    assert [r.path for r in fake.requests] == ["/v3/football/states", "/v3/football/livescores/inplay"]
    assert all(r.headers["Authorization"] == TOKEN and "api_token" not in r.query for r in fake.requests)


async def test_other_leagues_are_filtered_out(fake: FakeSportmonks) -> None:
    fake.set_current(body(Match(1, [1], []), Match(2, [2], [], league_id=8)))
    sm = client(fake)
    try:
        snap = await sm.fetch()
    finally:
        await sm.aclose()
    assert [f.id for f in snap.fixtures] == [1]


async def test_follows_pagination(fake: FakeSportmonks) -> None:
    page1 = body(Match(1, [1], []))
    page1["pagination"] = {"count": 1, "per_page": 1, "current_page": 1, "next_page": "x", "has_more": True}
    page2 = body(Match(2, [2], []))
    page2["pagination"] = {"count": 1, "per_page": 1, "current_page": 2, "next_page": None, "has_more": False}
    fake.push(Reply(body=page1), Reply(body=page2))
    sm = client(fake)
    try:
        snap = await sm.fetch()
    finally:
        await sm.aclose()
    assert [f.id for f in snap.fixtures] == [1, 2]
    assert fake.requests[-1].query["page"] == ["2"]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (rate_limited(42), RateLimited),
        (Reply(status=500, body={"message": "oops"}), ServerError),
        (Reply(status=503, raw=b"<html>bad gateway</html>"), ServerError),
        (Reply(status=400, body={"message": "bad include"}), ClientError),
        (Reply(raw=b'{"data": [ {"id": 1, '), MalformedResponse),
        (Reply(body={"message": "no data key"}), MalformedResponse),
        (Reply(body={"data": "not a list"}), MalformedResponse),
    ],
)
async def test_faults_raise_specific_errors(
    fake: FakeSportmonks, reply: Reply, error: type[Exception]
) -> None:
    fake.push(reply)
    sm = client(fake)
    try:
        with pytest.raises(error):
            await sm.fetch()
    finally:
        await sm.aclose()


async def test_429_carries_resets_in_seconds(fake: FakeSportmonks) -> None:
    fake.push(rate_limited(42), Reply(status=429, raw=b"", headers={"Retry-After": "9"}))
    sm = client(fake)
    try:
        with pytest.raises(RateLimited) as first:
            await sm.fetch()
        with pytest.raises(RateLimited) as second:
            await sm.fetch()
    finally:
        await sm.aclose()
    assert first.value.resets_in_seconds == 42
    assert second.value.resets_in_seconds == 9


async def test_timeout(fake: FakeSportmonks) -> None:
    fake.push(Reply(body=body(), delay_s=3.0))
    sm = client(fake, timeout_s=0.2)
    try:
        with pytest.raises(FeedTimeout):
            await sm.fetch()
    finally:
        await sm.aclose()


async def test_connection_refused_is_a_timeout_kind_error() -> None:
    sm = SportmonksClient("http://127.0.0.1:9/v3/football", TOKEN, timeout_s=0.5)
    try:
        with pytest.raises(FeedTimeout):
            await sm.fetch()
    finally:
        await sm.aclose()


async def test_wrong_token_is_unauthorized_and_never_logged(
    fake: FakeSportmonks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sm = client(fake, token="wrong-token-secret")
    try:
        with pytest.raises(Unauthorized) as err:
            await sm.fetch()
    finally:
        await sm.aclose()
    assert err.value.status == 401
    assert "wrong-token-secret" not in caplog.text
    assert "wrong-token-secret" not in repr(sm) and "wrong-token-secret" not in str(err.value)


@pytest.mark.parametrize("mutation", ["no_details", "no_lineups", "no_events", "string_id", "string_state"])
async def test_partial_or_malformed_fixture_yields_no_ratings(fake: FakeSportmonks, mutation: str) -> None:
    match = Match(5, [1, 2], [3])
    match.rate(p1=6.85, p2=6.9, p3=7.1)
    good = match.json()
    fx = match.json()
    if mutation == "no_details":
        del fx["lineups"][1]["details"]
    elif mutation == "no_lineups":
        del fx["lineups"]
    elif mutation == "no_events":
        del fx["events"]
    elif mutation == "string_state":
        fx["state_id"] = "2"
    else:
        fx["id"] = "5"
    fake.push(Reply(body=shape.envelope([good, fx])))
    sm = client(fake)
    try:
        with pytest.raises(MalformedResponse):
            await sm.fetch()
    finally:
        await sm.aclose()


async def test_a_bad_rating_drops_that_players_value_only(fake: FakeSportmonks) -> None:
    match = Match(5, [1, 2], [3])
    match.rate(p1=6.85, p2=6.9, p3=7.1)
    fx = match.json()
    fx["lineups"][0]["details"][0]["data"]["value"] = "6.85"  # a string: player 1 keeps his price
    fx["lineups"][2]["details"][0]["data"]["value"] = 10.0001
    fake.push(Reply(body=shape.envelope([fx])))
    sm = client(fake)
    try:
        snap = await sm.fetch()
    finally:
        await sm.aclose()
    assert {p.player_id: p.rating for p in snap.fixtures[0].players} == {1: None, 2: 6.9, 3: None}
    assert snap.bad_values == ("not_a_number", "out_of_range")


async def test_bad_values_of_every_page_are_reported(fake: FakeSportmonks) -> None:
    first, second = Match(1, [1], []), Match(2, [2], [])
    first.rate(p1=6.0)
    second.rate(p2=float("nan"))  # JSON NaN: Python's json writes and reads it
    page1 = body(first)
    page1["pagination"] = {"count": 1, "per_page": 1, "current_page": 1, "next_page": "x", "has_more": True}
    page1["data"][0]["lineups"][0]["details"][0]["data"]["value"] = None
    fake.push(Reply(raw=json.dumps(page1).encode()), Reply(raw=json.dumps(body(second)).encode()))
    sm = client(fake)
    try:
        snap = await sm.fetch()
    finally:
        await sm.aclose()
    assert [p.rating for f in snap.fixtures for p in f.players] == [None, None]
    assert snap.bad_values == ("null", "nan")


async def test_states_come_from_the_states_endpoint_once_per_refresh(fake: FakeSportmonks) -> None:
    now = [0.0]
    fake.states_per_page = 10  # 25 states: three pages
    fake.states = [*shape.catalogue(), shape.state(99, "INPLAY_GOLDEN_GOAL")]  # a state new to us
    match = Match(5, [1], [2])
    match.state_id = 99
    fake.set_current(body(match))
    sm = SportmonksClient(fake.url, TOKEN, timeout_s=2.0, states_refresh_s=3600, clock=lambda: now[0])
    try:
        assert (await sm.fetch()).fixtures[0].live  # listed as in play: live, though not a fallback id
        assert len(fake.states_requests()) == 3
        assert [r.query.get("page") for r in fake.states_requests()] == [None, ["2"], ["3"]]
        registry = sm.state_cache.registry
        assert registry.from_source and len(registry.states) == 26 and registry.disagreements() == [99]
        for state_id, live in [(23, True), (21, True), (25, True), (9, True), (5, False), (8, False)]:
            match.state_id = state_id
            fake.set_current(body(match))
            assert (await sm.fetch()).fixtures[0].live is live
        assert len(fake.states_requests()) == 3  # cached
        now[0] = 3600.0
        await sm.fetch()
        assert len(fake.states_requests()) == 6  # refreshed after a day (here: an hour)
    finally:
        await sm.aclose()


async def test_without_the_states_list_the_fallback_ids_decide_and_it_is_retried(
    fake: FakeSportmonks, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [0.0]
    fake.states_reply = Reply(status=500, body={"message": "oops"})
    match = Match(5, [1], [2])
    match.state_id = 23  # extra time, 2nd half: a fallback id
    fake.set_current(body(match))
    sm = SportmonksClient(fake.url, TOKEN, timeout_s=2.0, states_retry_s=300, clock=lambda: now[0])
    try:
        snap = await sm.fetch()  # the states failure does not fail the poll
        assert snap.fixtures[0].live and not sm.state_cache.registry.from_source
        await sm.fetch()
        assert len(fake.states_requests()) == 1 and sm.state_cache.failures == 1
        fake.states_reply = None
        now[0] = 300.0
        await sm.fetch()
        assert len(fake.states_requests()) == 2 and sm.state_cache.registry.from_source
        fake.states_reply = Reply(status=503, raw=b"down")
        now[0] = 300.0 + 86_400
        await sm.fetch()  # a failed refresh keeps the list it has
        assert sm.state_cache.registry.from_source and sm.state_cache.failures == 1
    finally:
        await sm.aclose()
    out = capsys.readouterr().out
    assert "sportmonks states unavailable" in out and TOKEN not in out


async def test_progress_comes_from_the_periods_include(fake: FakeSportmonks) -> None:
    match = Match(5, [1], [2])
    match.state_id = 22
    match.periods = [
        shape.period(5, 1, 1, started=1_781_805_600, ended=1_781_808_400),
        shape.period(5, 2, 2, started=1_781_809_300, ticking=True, minutes=67, seconds=12),
    ]
    fake.set_current(body(match))
    sm = client(fake)
    try:
        assert (await sm.fetch()).fixtures[0].progress == (2, 67 * 60 + 12)
        match.periods = [{"sort_order": "2", "minutes": 3}]  # odd periods: no progress, not a rejection
        fake.set_current(body(match))
        snap = await sm.fetch()
    finally:
        await sm.aclose()
    assert snap.fixtures[0].progress is None and snap.bad_values == ("bad_period",)


def test_bad_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        SportmonksClient("http://x", TOKEN, endpoint="fixtures")
    with pytest.raises(ValueError, match="event_types"):
        SportmonksClient("http://x", TOKEN, event_types=())


def test_the_event_filter_follows_the_configured_types() -> None:
    assert "eventTypes:14,23" in SportmonksClient("http://x", TOKEN, event_types={23, 14}).params()["filters"]
