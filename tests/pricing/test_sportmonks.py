"""The Sportmonks client against the fake server over real HTTP: the envelope and every fault."""

from __future__ import annotations

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
    assert seen.query["include"] == ["lineups.details.type;events"]
    assert "fixtureLeagues:732" in seen.query["filters"][0]
    assert "api_token" not in seen.query  # the token travels in the header only


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


@pytest.mark.parametrize("mutation", ["no_details", "no_lineups", "no_events", "bad_rating", "string_id"])
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
    elif mutation == "bad_rating":
        fx["lineups"][0]["details"][0]["data"]["value"] = "6.85"
    else:
        fx["id"] = "5"
    fake.push(Reply(body=shape.envelope([good, fx])))
    sm = client(fake)
    try:
        with pytest.raises(MalformedResponse):
            await sm.fetch()
    finally:
        await sm.aclose()


def test_bad_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        SportmonksClient("http://x", TOKEN, endpoint="fixtures")
