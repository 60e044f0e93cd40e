"""Refresh rotation with reuse detection, logout, and concurrent refreshes (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from starlette.applications import Starlette

from ftl.auth.refresh import RefreshStore
from ftl.auth.tokens import Tokens
from ftl.errors import Refused
from ftl.persistence.stores import Stores
from tests.auth.support import bearer, dev_login, error_code


async def refresh(api: httpx.AsyncClient, token: str) -> httpx.Response:
    return await api.post("/api/auth/refresh", json={"refresh_token": token})


async def family_state(stores: Stores, token_jti: str) -> list[tuple[bool, bool]]:
    """(used, revoked) of every token in the family of ``token_jti``."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT used_at IS NOT NULL, revoked_at IS NOT NULL FROM refresh_tokens "
            "WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE jti = %s) ORDER BY issued_at",
            (uuid.UUID(token_jti),),
        )
        return [(bool(a), bool(b)) for a, b in await cur.fetchall()]


def jti_of(tokens: Tokens, refresh_token: str) -> str:
    return tokens.verify(refresh_token, "refresh").jti


async def test_refresh_rotates_and_each_token_works_once(api: httpx.AsyncClient) -> None:
    session = await dev_login(api)
    first = await refresh(api, session["refresh_token"])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["refresh_token"] != session["refresh_token"]
    assert body["user"] == session["user"]
    assert body["token_type"] == "Bearer"
    me = await api.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == session["user"]["id"]
    second = await refresh(api, body["refresh_token"])
    assert second.status_code == 200, second.text


async def test_reuse_revokes_the_whole_family(
    api: httpx.AsyncClient, stores: Stores, api_app: Starlette
) -> None:
    tokens: Tokens = api_app.state.tokens
    session = await dev_login(api)
    old = session["refresh_token"]
    new = (await refresh(api, old)).json()["refresh_token"]
    reused = await refresh(api, old)
    assert reused.status_code == 401
    assert error_code(reused) == "token_reused"
    assert await family_state(stores, jti_of(tokens, old)) == [(True, True), (False, True)]
    # The successor the thief or the victim holds is dead too.
    after = await refresh(api, new)
    assert after.status_code == 401
    assert error_code(after) == "token_revoked"


async def test_logout_revokes_the_family(api: httpx.AsyncClient, stores: Stores, api_app: Starlette) -> None:
    tokens: Tokens = api_app.state.tokens
    session = await dev_login(api)
    rotated = (await refresh(api, session["refresh_token"])).json()["refresh_token"]
    out = await api.post("/api/auth/logout", json={"refresh_token": rotated})
    assert out.status_code == 204
    assert out.content == b""
    assert all(revoked for _, revoked in await family_state(stores, jti_of(tokens, rotated)))
    resp = await refresh(api, rotated)
    assert resp.status_code == 401
    assert error_code(resp) == "token_revoked"
    # Logging out twice is fine; other sessions of the same user are untouched.
    assert (await api.post("/api/auth/logout", json={"refresh_token": rotated})).status_code == 204


async def test_logout_leaves_other_sessions_alone(api: httpx.AsyncClient) -> None:
    email = "two-sessions-" + uuid.uuid4().hex[:8] + "@example.com"
    laptop, phone = await dev_login(api, email), await dev_login(api, email)
    assert (
        await api.post("/api/auth/logout", json={"refresh_token": laptop["refresh_token"]})
    ).status_code == 204
    assert (await refresh(api, phone["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_of_one_token_exactly_one_succeeds(api: httpx.AsyncClient) -> None:
    session = await dev_login(api)
    replies = await asyncio.gather(*(refresh(api, session["refresh_token"]) for _ in range(8)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] + [401] * 7, [r.text for r in replies]
    # The first loser is a reuse and revokes the family; later ones may already find it revoked.
    codes = {error_code(r) for r in replies if r.status_code == 401}
    assert "token_reused" in codes
    assert codes <= {"token_reused", "token_revoked"}
    winner = next(r for r in replies if r.status_code == 200)
    assert (await refresh(api, winner.json()["refresh_token"])).status_code == 401


async def test_store_rotation_race_has_one_winner(
    stores: Stores, api: httpx.AsyncClient, api_app: Starlette
) -> None:
    tokens: Tokens = api_app.state.tokens
    session = await dev_login(api)
    claims = tokens.verify(session["refresh_token"], "refresh")
    store = RefreshStore(stores.pg)

    async def attempt() -> str:
        try:
            await store.rotate(claims, tokens.issue_refresh)
        except Refused as exc:
            return exc.code
        return "ok"

    results = await asyncio.gather(*(attempt() for _ in range(10)))
    assert results.count("ok") == 1, results


async def test_access_token_is_not_a_refresh_token(api: httpx.AsyncClient) -> None:
    session = await dev_login(api)
    resp = await refresh(api, session["access_token"])
    assert resp.status_code == 401
    assert error_code(resp) == "wrong_token_type"
    out = await api.post("/api/auth/logout", json={"refresh_token": session["access_token"]})
    assert out.status_code == 401
    assert error_code(out) == "wrong_token_type"


async def test_refresh_token_is_not_an_access_token(api: httpx.AsyncClient) -> None:
    session = await dev_login(api)
    resp = await api.get("/api/me", headers=bearer(session["refresh_token"]))
    assert resp.status_code == 401
    assert error_code(resp) == "wrong_token_type"


async def test_expired_refresh_token(api: httpx.AsyncClient, api_app: Starlette) -> None:
    tokens: Tokens = api_app.state.tokens
    session = await dev_login(api)
    stale = tokens.issue_refresh(session["user"]["id"], uuid.uuid4(), now=1_700_000_000)
    resp = await refresh(api, stale.token)
    assert resp.status_code == 401
    assert error_code(resp) == "token_expired"


async def test_validly_signed_but_unrecorded_refresh_token(
    api: httpx.AsyncClient, api_app: Starlette
) -> None:
    tokens: Tokens = api_app.state.tokens
    session = await dev_login(api)
    forged = tokens.issue_refresh(session["user"]["id"], uuid.uuid4())  # never stored
    resp = await refresh(api, forged.token)
    assert resp.status_code == 401
    assert error_code(resp) == "unknown_token"
