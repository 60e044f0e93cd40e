"""Claims of our tokens that are signed correctly but must still be refused, and hostile login text."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from ftl.auth.keyring import KeyRing
from ftl.auth.principal import Principal
from ftl.auth.tokens import Tokens
from ftl.errors import Kind, Refused
from tests.auth.support import bearer, dev_login, error_code, signed, unique_email

KEY = ("k1", "c" * 40)


BAD_CLAIMS: list[tuple[str, dict[str, Any], str]] = [
    ("sub superscript two", {"sub": "²"}, "invalid_claims"),
    ("sub arabic-indic", {"sub": "\u0665"}, "invalid_claims"),
    ("sub house account", {"sub": "0"}, "invalid_claims"),
    ("sub negative", {"sub": "-5"}, "invalid_claims"),
    ("sub signed", {"sub": "+5"}, "invalid_claims"),
    ("sub over bigint", {"sub": str(2**63)}, "invalid_claims"),
    ("sub number", {"sub": 5}, "invalid_claims"),
    ("exp 2**64", {"exp": 2**64}, "invalid_claims"),
    ("exp after 9999", {"exp": 253_402_300_800}, "invalid_claims"),
    ("iat negative", {"iat": -1}, "invalid_claims"),
    ("nbf not a number", {"nbf": "soon"}, "invalid_claims"),
    ("nbf 2**64", {"nbf": 2**64}, "invalid_claims"),
    ("nbf in an hour", {"nbf": int(time.time()) + 3600}, "token_not_yet_valid"),
]


@pytest.mark.parametrize(("case", "claims", "code"), BAD_CLAIMS, ids=[c[0] for c in BAD_CLAIMS])
def test_signed_but_bad_claims_are_refused(case: str, claims: dict[str, Any], code: str) -> None:
    tokens = Tokens(KeyRing.of((KEY,)), 900, 3600)
    with pytest.raises(Refused) as info:
        tokens.verify_access(signed(tokens, **claims))
    assert (info.value.kind, info.value.code) == (Kind.UNAUTHORIZED, code), case


def test_nbf_within_the_clock_skew_and_in_the_past_is_accepted() -> None:
    tokens = Tokens(KeyRing.of((KEY,)), 900, 3600)
    now = int(time.time())
    assert tokens.verify_access(signed(tokens, nbf=now - 10)).user_id == 5
    assert tokens.verify_access(signed(tokens, nbf=now + 30)).user_id == 5


def test_a_principal_is_never_the_house_or_beyond_year_9999() -> None:
    with pytest.raises(ValueError, match="not a user id"):
        Principal(0, 1)
    with pytest.raises(ValueError, match="not an expiry date"):
        Principal(1, 2**64)
    assert Principal(1, 253_402_300_799).user_id == 1


@pytest.mark.parametrize(("case", "claims", "code"), BAD_CLAIMS, ids=[c[0] for c in BAD_CLAIMS])
async def test_rest_answers_401_with_the_token_code(
    api: httpx.AsyncClient, api_app: Starlette, case: str, claims: dict[str, Any], code: str
) -> None:
    token = signed(api_app.state.tokens, **claims)
    for path in ("/api/portfolio", "/api/me"):
        resp = await api.get(path, headers=bearer(token))
        assert resp.status_code == 401, f"{case} {path}: {resp.text}"
        assert error_code(resp) == code
        assert "WWW-Authenticate" in resp.headers


async def test_the_house_wallet_is_nobodys_portfolio(api: httpx.AsyncClient, api_app: Starlette) -> None:
    user = await dev_login(api)
    own = await api.get("/api/portfolio", headers=bearer(user["access_token"]))
    assert own.status_code == 200 and "wallet" in own.json()
    resp = await api.get("/api/portfolio", headers=bearer(signed(api_app.state.tokens, sub="0")))
    assert (resp.status_code, error_code(resp)) == (401, "invalid_claims")
    assert set(resp.json()) == {"error"}


async def test_a_user_that_does_not_exist_is_refused_everywhere(
    api: httpx.AsyncClient, api_app: Starlette
) -> None:
    ghost = api_app.state.tokens.issue_access(987_654_321)
    for path in ("/api/portfolio", "/api/trades", "/api/leaderboard", "/api/me"):
        resp = await api.get(path, headers=bearer(ghost))
        assert (resp.status_code, error_code(resp)) == (401, "unknown_user"), path


# Raw JSON: a lone surrogate is a valid JSON escape, but no UTF-8 (httpx's json= cannot send it).
HOSTILE_TEXT: list[tuple[str, str]] = [
    ("email", '{"email": "a\\u0000@b.c"}'),
    ("email", '{"email": "\\ud800@b.c"}'),
    ("name", '{"email": "%s", "name": "Ada\\u0000"}'),
    ("name", '{"email": "%s", "name": "\\udfff"}'),
]


@pytest.mark.parametrize(("field", "raw"), HOSTILE_TEXT)
async def test_dev_login_refuses_nul_and_lone_surrogates(
    api: httpx.AsyncClient, field: str, raw: str
) -> None:
    email = unique_email()
    body = raw.replace("%s", email)
    resp = await api.post("/api/auth/dev", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_field"
    assert resp.json()["error"]["field"] == field
    user = (await dev_login(api, email))["user"]  # the refused login stored nothing
    assert (user["email"], user["name"]) == (email, "")
