"""The authentication dependency (Bearer access tokens) as every /api route and the ws role see it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ftl.auth.keyring import KeyRing
from ftl.auth.tokens import Tokens
from ftl.errors import Kind, Refused
from ftl.web.auth_deps import current_user, verify_access_token
from ftl.web.errors import EXCEPTION_HANDLERS
from tests.auth.fake_google import b64json, tamper
from tests.auth.support import bearer, dev_login, error_code

OLD = ("old", "o" * 40)
NEW = ("new", "n" * 40)


async def whoami(request: Request) -> JSONResponse:
    principal = await current_user(request)
    return JSONResponse({"user_id": principal.user_id})


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A bare app with one protected route and keys NEW (signing) and OLD (still listed)."""
    app = Starlette(routes=[Route("/api/whoami", whoami)], exception_handlers=EXCEPTION_HANDLERS)
    app.state.tokens = Tokens(KeyRing.of((NEW, OLD)), 900, 3600)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


def signed_by(pair: tuple[str, str], user_id: int = 5, now: int | None = None) -> str:
    return Tokens(KeyRing.of((pair,)), 900, 3600).issue_access(user_id, now=now)


async def test_access_token_by_the_newest_or_an_older_listed_key(client: httpx.AsyncClient) -> None:
    for pair in (NEW, OLD):
        resp = await client.get("/api/whoami", headers=bearer(signed_by(pair, 5)))
        assert resp.status_code == 200
        assert resp.json() == {"user_id": 5}
    lower = await client.get("/api/whoami", headers={"authorization": "bearer " + signed_by(NEW, 6)})
    assert lower.json() == {"user_id": 6}


def _none_alg() -> str:
    now = int(time.time())
    claims = {"iss": "ftl", "typ": "access", "sub": "5", "jti": "j", "iat": now, "exp": now + 60}
    return f"{b64json({'alg': 'none', 'kid': 'new'})}.{b64json(claims)}."


CASES: list[tuple[str, dict[str, str], str]] = [
    ("no header", {}, "missing_token"),
    ("basic auth", {"Authorization": "Basic dXNlcjpwYXNz"}, "malformed_token"),
    ("bearer without token", {"Authorization": "Bearer "}, "malformed_token"),
    ("64 KB", bearer("a" * 64 * 1024), "token_too_large"),
    ("random bytes", bearer(os.urandom(300).hex()), "malformed_token"),
    ("alg none", bearer(_none_alg()), "unsupported_alg"),
    ("tampered", bearer(tamper(signed_by(NEW, 5), sub="1")), "bad_signature"),
    ("expired", bearer(signed_by(NEW, now=int(time.time()) - 1000)), "token_expired"),
    ("issued in the future", bearer(signed_by(NEW, now=int(time.time()) + 3600)), "token_not_yet_valid"),
    ("key no longer listed", bearer(signed_by(("retired", "r" * 40))), "unknown_key"),
    (
        "refresh as access",
        bearer(Tokens(KeyRing.of((NEW,)), 9, 99).issue_refresh(5, uuid.uuid4()).token),
        "wrong_token_type",
    ),
]


@pytest.mark.parametrize(("case", "headers", "code"), CASES, ids=[c[0] for c in CASES])
async def test_refused_with_401_and_a_specific_code(
    client: httpx.AsyncClient, case: str, headers: dict[str, str], code: str
) -> None:
    resp = await client.get("/api/whoami", headers=headers)
    assert resp.status_code == 401, case
    assert error_code(resp) == code, case
    assert "WWW-Authenticate" in resp.headers


def test_verify_access_token_for_the_ws_role() -> None:
    tokens = Tokens(KeyRing.of((NEW, OLD)), 900, 3600)
    assert verify_access_token(tokens, signed_by(OLD, 9)).user_id == 9
    with pytest.raises(Refused) as info:
        verify_access_token(tokens, "garbage")
    assert (info.value.kind, info.value.code) == (Kind.UNAUTHORIZED, "malformed_token")


async def test_me_for_a_user_that_does_not_exist(api: httpx.AsyncClient, api_app: Starlette) -> None:
    ghost = api_app.state.tokens.issue_access(987_654_321)
    resp = await api.get("/api/me", headers=bearer(ghost))
    assert resp.status_code == 401
    assert error_code(resp) == "unknown_user"


async def test_me_without_a_token(api: httpx.AsyncClient) -> None:
    await dev_login(api)
    resp = await api.get("/api/me")
    assert resp.status_code == 401
    assert error_code(resp) == "missing_token"
