"""Google's key set cache: max-age, one shared refetch on an unknown kid, last good set on failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from ftl.auth.jwks import JwksCache, JwksUnavailable, max_age, parse_key_set
from tests.auth.fake_google import FakeGoogle, rsa_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


def cache(google: FakeGoogle, http: httpx.AsyncClient, clock: Clock) -> JwksCache:
    return JwksCache(google.url, http, unknown_kid_interval_s=30.0, retry_s=10.0, clock=clock)


async def test_cached_for_max_age_then_refetched(google: FakeGoogle, http: httpx.AsyncClient) -> None:
    google.max_age = 120
    clock = Clock()
    jwks = cache(google, http, clock)
    assert await jwks.key("g1") is not None
    clock.now += 119
    assert await jwks.key("g1") is not None
    assert google.hits == 1
    google.publish("g2")
    clock.now += 2
    assert await jwks.key("g2") is not None
    assert google.hits == 2
    assert await jwks.key("g1") is None  # rotated out, and the unknown-kid refetch finds nothing new
    assert google.hits == 3


async def test_concurrent_unknown_kids_share_one_fetch(google: FakeGoogle, http: httpx.AsyncClient) -> None:
    clock = Clock()
    jwks = cache(google, http, clock)
    assert await jwks.key("g1") is not None
    google.publish("g1", "g2")
    found = await asyncio.gather(*(jwks.key("g2") for _ in range(50)))
    assert all(key is not None for key in found)
    assert google.hits == 2


async def test_unknown_kid_refetch_is_rate_limited(google: FakeGoogle, http: httpx.AsyncClient) -> None:
    clock = Clock()
    jwks = cache(google, http, clock)
    await jwks.key("g1")
    for n in range(20):
        assert await jwks.key(f"made-up-{n}") is None
    assert google.hits == 2  # the first fetch and one refetch
    clock.now += 30
    google.publish("g1", "g2")
    assert await jwks.key("g2") is not None
    assert google.hits == 3


async def test_failed_refresh_keeps_the_last_good_set(google: FakeGoogle, http: httpx.AsyncClient) -> None:
    google.max_age = 60
    clock = Clock()
    jwks = cache(google, http, clock)
    good = await jwks.key("g1")
    google.go_down()
    clock.now += 61
    assert await jwks.key("g1") == good
    assert google.hits == 2
    assert await jwks.key("g1") == good  # within retry_s: no new attempt
    assert google.hits == 2
    clock.now += 11
    google.go_down(status=200)
    assert await jwks.key("g1") == good
    assert google.hits == 3


async def test_never_fetched_and_down_is_unavailable(google: FakeGoogle, http: httpx.AsyncClient) -> None:
    google.go_down(500)
    with pytest.raises(JwksUnavailable):
        await cache(google, http, Clock()).key("g1")


async def test_unreachable_host_is_unavailable(http: httpx.AsyncClient) -> None:
    google = FakeGoogle()
    url = google.url  # bound but never served: connections are refused
    google.stop_unstarted()
    jwks = JwksCache(url, http, clock=Clock())
    with pytest.raises(JwksUnavailable):
        await jwks.key("g1")


def test_max_age_parsing() -> None:
    assert max_age("public, max-age=19800, must-revalidate, no-transform") == 19800
    assert max_age("") == 300
    assert max_age("no-store") == 1
    assert max_age("max-age=0") == 1
    assert max_age("max-age=99999999") == 86_400


def test_key_set_keeps_only_rs256_signing_keys() -> None:
    rsa = {**rsa_key("g1").as_dict(private=False), "alg": "RS256"}
    keys = parse_key_set(
        {
            "keys": [
                rsa,
                {**rsa, "kid": "enc", "use": "enc"},
                {**rsa, "kid": "ps", "alg": "PS256"},
                {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                "junk",
            ]
        }
    )
    assert sorted(keys) == ["g1"]
    assert "d" not in keys["g1"].as_dict(private=False)
    with pytest.raises(ValueError, match="no usable"):
        parse_key_set({"keys": []})
    with pytest.raises(ValueError, match="not a JWKS"):
        parse_key_set([1, 2])
