"""POST /api/auth/google against a fake Google on loopback: accepted and rejected ID tokens."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from ftl.persistence.stores import Stores
from tests.auth.fake_google import (
    FakeGoogle,
    mint,
    mint_hs256_with_public_key,
    mint_unsigned,
    tamper,
)
from tests.auth.support import bearer, error_code


def new_sub() -> str:
    return str(10**15 + secrets.randbelow(10**15))


async def login(api: httpx.AsyncClient, token: str, **extra: object) -> httpx.Response:
    return await api.post("/api/auth/google", json={"id_token": token, **extra})


async def test_good_token_creates_a_funded_user(api: httpx.AsyncClient, stores: Stores) -> None:
    sub, email = new_sub(), f"g-{secrets.token_hex(4)}@example.com"
    resp = await login(api, mint("g1", sub=sub, email=email, name="Grace"), district_id=7)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == stores.settings.access_ttl_s
    assert body["user"]["email"] == email
    assert body["user"]["name"] == "Grace"
    assert body["user"]["district_id"] == 7
    start = stores.settings.start_balance
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT u.google_sub, w.available, w.locked, w.granted FROM users u "
            "JOIN wallets w ON w.user_id = u.id WHERE u.id = %s",
            (body["user"]["id"],),
        )
        assert await cur.fetchone() == (sub, start, 0, start)
    hot = await stores.redis.hgetall(stores.keys.wallet(body["user"]["id"]))
    assert hot[b"available"] == str(start).encode()
    me = await api.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["wallet"] == {"available": start, "locked": 0, "equity": start}


async def test_second_login_is_the_same_user_and_grants_nothing_more(
    api: httpx.AsyncClient, stores: Stores
) -> None:
    sub = new_sub()
    first = await login(api, mint("g1", sub=sub, email=f"{sub}@example.com"))
    again = await login(api, mint("g1", sub=sub, email=f"{sub}@example.com", name="Renamed"), district_id=3)
    assert first.status_code == again.status_code == 200
    user_id = first.json()["user"]["id"]
    assert again.json()["user"] == {**first.json()["user"], "name": "Renamed", "district_id": 3}
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*), sum(granted) FROM wallets WHERE user_id = %s", (user_id,))
        assert await cur.fetchone() == (1, stores.settings.start_balance)


async def test_key_that_appears_after_rotation_is_accepted(
    api: httpx.AsyncClient, google: FakeGoogle
) -> None:
    assert (await login(api, mint("g1", sub=new_sub()))).status_code == 200
    hits = google.hits
    google.publish("g1", "g2")
    resp = await login(api, mint("g2", sub=new_sub(), email=f"r-{secrets.token_hex(4)}@example.com"))
    assert resp.status_code == 200, resp.text
    assert google.hits == hits + 1


async def test_jwks_down_after_first_fetch_logins_keep_working(
    api: httpx.AsyncClient, api_app: Starlette, google: FakeGoogle
) -> None:
    assert (await login(api, mint("g1", sub=new_sub()))).status_code == 200
    google.go_down()
    # Even past the cache's max-age the last good key set serves.
    api_app.state.auth.google.jwks.fresh_until = 0.0
    for _ in range(3):
        sub = new_sub()
        resp = await login(api, mint("g1", sub=sub, email=f"{sub}@example.com"))
        assert resp.status_code == 200, resp.text
    assert google.hits >= 2  # it did try again, and failed


async def test_jwks_never_reachable_is_503_not_500(api: httpx.AsyncClient, google: FakeGoogle) -> None:
    google.go_down()
    resp = await login(api, mint("g1"))
    assert resp.status_code == 503
    assert error_code(resp) == "google_unavailable"


def _future_iat() -> str:
    now = int(time.time())
    return mint("g1", iat=now + 600, exp=now + 4200)


REJECTED: list[tuple[str, Callable[[], str], str]] = [
    ("expired", lambda: mint("g1", iat=int(time.time()) - 7200, exp=int(time.time()) - 61), "token_expired"),
    ("iat in the future", _future_iat, "token_not_yet_valid"),
    ("wrong aud", lambda: mint("g1", aud="someone-else.apps.googleusercontent.com"), "wrong_audience"),
    ("wrong aud list", lambda: mint("g1", aud=["someone-else"], azp="someone-else"), "wrong_audience"),
    ("wrong iss", lambda: mint("g1", iss="https://evil.example.com"), "wrong_issuer"),
    ("email not verified", lambda: mint("g1", email_verified=False), "email_not_verified"),
    ("no sub", lambda: mint("g1", sub=None), "invalid_claims"),
    ("alg none", lambda: mint_unsigned("g1"), "unsupported_alg"),
    ("HS256 keyed with the public key", lambda: mint_hs256_with_public_key("g1"), "unsupported_alg"),
    ("RS512", lambda: mint("g1", header={"alg": "RS512"}), "unsupported_alg"),
    ("tampered payload", lambda: tamper(mint("g1"), sub="1", email="admin@example.com"), "bad_signature"),
    ("unknown kid", lambda: mint("g-unlisted"), "unknown_key"),
    ("64 KB token", lambda: "a" * (64 * 1024), "token_too_large"),
    ("random bytes", lambda: os.urandom(600).hex(), "malformed_token"),
    ("random segments", lambda: ".".join(os.urandom(40).hex() for _ in range(3)), "malformed_token"),
    ("empty", lambda: "", "malformed_token"),
]


@pytest.mark.parametrize(("case", "make", "code"), REJECTED, ids=[c[0] for c in REJECTED])
async def test_rejected_with_401_and_a_specific_code(
    api: httpx.AsyncClient, stores: Stores, case: str, make: Callable[[], str], code: str
) -> None:
    async with stores.pg.connection() as conn:
        before = await (await conn.execute("SELECT count(*) FROM users")).fetchone()
    resp = await login(api, make())
    assert resp.status_code == 401, f"{case}: {resp.status_code} {resp.text}"
    assert error_code(resp) == code, case
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    async with stores.pg.connection() as conn:
        after = await (await conn.execute("SELECT count(*) FROM users")).fetchone()
    assert after == before  # a refused login changes nothing


async def test_unknown_kid_refetches_once_and_still_refuses(
    api: httpx.AsyncClient, google: FakeGoogle
) -> None:
    assert (await login(api, mint("g1", sub=new_sub()))).status_code == 200
    hits = google.hits
    google.publish("g1", "g2")  # the refreshed set has g2, not g3
    resp = await login(api, mint("g3"))
    assert resp.status_code == 401
    assert error_code(resp) == "unknown_key"
    assert google.hits == hits + 1
    # Another made-up kid right away: rate-limited, no second fetch.
    resp = await login(api, mint("g4"))
    assert error_code(resp) == "unknown_key"
    assert google.hits == hits + 1


async def test_leeway_accepts_a_minute_of_clock_skew(api: httpx.AsyncClient) -> None:
    now = int(time.time())
    resp = await login(api, mint("g1", sub=new_sub(), iat=now + 30, exp=now + 3600))
    assert resp.status_code == 200, resp.text
    resp = await login(api, mint("g1", sub=new_sub(), iat=now - 3600, exp=now - 30))
    assert resp.status_code == 200, resp.text


async def test_email_already_taken_by_another_google_account_is_409(api: httpx.AsyncClient) -> None:
    email = f"taken-{secrets.token_hex(4)}@example.com"
    assert (await login(api, mint("g1", sub=new_sub(), email=email))).status_code == 200
    resp = await login(api, mint("g1", sub=new_sub(), email=email))
    assert resp.status_code == 409
    assert error_code(resp) == "email_in_use"


async def test_google_login_adopts_the_dev_account_with_that_email(api: httpx.AsyncClient) -> None:
    email = f"dev-{secrets.token_hex(4)}@example.com"
    dev = await api.post("/api/auth/dev", json={"email": email})
    google = await login(api, mint("g1", sub=new_sub(), email=email))
    assert google.status_code == 200
    assert google.json()["user"]["id"] == dev.json()["user"]["id"]
