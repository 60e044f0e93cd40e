"""The auth endpoints over HTTP: dev login, /api/me, strict bodies, per-IP rate limit."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest
from starlette.applications import Starlette

from ftl.health import Health
from ftl.persistence.stores import Stores
from ftl.web.api import build_api
from tests.auth.support import bearer, dev_login, error_code, unique_email


async def test_dev_login_creates_a_user_with_a_wallet(api: httpx.AsyncClient, stores: Stores) -> None:
    email = unique_email()
    session = await dev_login(api, email.upper(), name="Dev", district_id=12)
    assert session["user"] == {**session["user"], "email": email, "name": "Dev", "district_id": 12}
    start = stores.settings.start_balance
    me = await api.get("/api/me", headers=bearer(session["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "id": session["user"]["id"],
        "email": email,
        "name": "Dev",
        "district_id": 12,
        "wallet": {"available": start, "locked": 0, "equity": start},
    }


async def test_a_new_users_used_keys_start_empty_and_a_later_login_leaves_them(
    api: httpx.AsyncClient, stores: Stores
) -> None:
    """A new user holds no idempotency key in PostgreSQL: his first trade need not ask it."""
    await stores.redis.set(stores.keys.boot_marker, "1")  # a hot state
    email = unique_email()
    user_id = (await dev_login(api, email))["user"]["id"]
    used = stores.keys.used_keys(user_id)
    assert await stores.redis.smembers(used) == {b"-1"}
    await stores.redis.delete(used)
    await dev_login(api, email)  # he may have traded since: loaded on his next trade, not here
    assert await stores.redis.exists(used) == 0


async def test_me_reads_the_hot_wallet_then_falls_back_to_postgres(
    api: httpx.AsyncClient, stores: Stores
) -> None:
    session = await dev_login(api)
    user_id, auth = session["user"]["id"], bearer(session["access_token"])
    key = stores.keys.wallet(user_id)
    await stores.redis.hset(key, mapping={"available": 700, "locked": 300, "equity": 1250})
    assert (await api.get("/api/me", headers=auth)).json()["wallet"] == {
        "available": 700,
        "locked": 300,
        "equity": 1250,
    }
    await stores.redis.delete(key)
    start = stores.settings.start_balance
    assert (await api.get("/api/me", headers=auth)).json()["wallet"] == {
        "available": start,
        "locked": 0,
        "equity": start,
    }


async def test_every_login_puts_the_wallet_into_redis(api: httpx.AsyncClient, stores: Stores) -> None:
    email = unique_email()
    user_id = (await dev_login(api, email))["user"]["id"]
    await stores.redis.delete(stores.keys.wallet(user_id))
    await dev_login(api, email)
    assert (
        await stores.redis.hget(stores.keys.wallet(user_id), "available")
        == str(stores.settings.start_balance).encode()
    )


async def test_dev_login_is_404_in_production(stores: Stores) -> None:
    prod = dataclasses.replace(stores, settings=stores.settings.replace(env="production"))
    app = build_api(prod, Health())
    email = unique_email()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            resp = await client.post("/api/auth/dev", json={"email": email})
    assert resp.status_code == 404
    assert error_code(resp) == "not_found"
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM users WHERE email = %s", (email,))
        assert await cur.fetchone() == (0,)


async def test_house_account_cannot_dev_login(api: httpx.AsyncClient) -> None:
    resp = await api.post("/api/auth/dev", json={"email": "house@ftl.invalid"})
    assert resp.status_code == 403
    assert error_code(resp) == "forbidden_account"


BAD_BODIES: list[tuple[str, str, bytes | str, int, str]] = [
    ("/api/auth/dev", "malformed", b"{", 400, "malformed_json"),
    ("/api/auth/dev", "not an object", b"[1]", 400, "malformed_json"),
    ("/api/auth/dev", "empty", b"", 400, "malformed_json"),
    ("/api/auth/dev", "NaN", b'{"email": "a@b.c", "district_id": NaN}', 400, "malformed_json"),
    ("/api/auth/dev", "deep", b"[" * 100_000 + b"]" * 100_000, 413, "body_too_large"),
    ("/api/auth/dev", "nested", b'{"email":' + b"[" * 5000 + b"]" * 5000 + b"}", 422, "invalid_field"),
    ("/api/auth/dev", "missing", b"{}", 422, "missing_field"),
    ("/api/auth/dev", "unknown field", b'{"email": "a@b.c", "admin": true}', 422, "unknown_field"),
    ("/api/auth/dev", "email type", b'{"email": 5}', 422, "invalid_field"),
    ("/api/auth/dev", "email shape", b'{"email": "nobody"}', 422, "invalid_field"),
    ("/api/auth/dev", "name type", b'{"email": "a@b.c", "name": []}', 422, "invalid_field"),
    ("/api/auth/dev", "name length", json.dumps({"email": "a@b.c", "name": "n" * 201}), 422, "invalid_field"),
    ("/api/auth/dev", "district bool", b'{"email": "a@b.c", "district_id": true}', 422, "invalid_field"),
    ("/api/auth/dev", "district float", b'{"email": "a@b.c", "district_id": 1.5}', 422, "invalid_field"),
    ("/api/auth/dev", "district huge", b'{"email": "a@b.c", "district_id": 1e400}', 422, "invalid_field"),
    ("/api/auth/dev", "district big", b'{"email": "a@b.c", "district_id": 99999999999}', 422, "out_of_range"),
    ("/api/auth/dev", "district zero", b'{"email": "a@b.c", "district_id": 0}', 422, "out_of_range"),
    ("/api/auth/google", "token type", b'{"id_token": 1}', 422, "invalid_field"),
    ("/api/auth/google", "missing token", b'{"district_id": 1}', 422, "missing_field"),
    ("/api/auth/google", "huge body", b'{"id_token": "' + b"a" * 200_000 + b'"}', 413, "body_too_large"),
    ("/api/auth/refresh", "token null", b'{"refresh_token": null}', 422, "invalid_field"),
    ("/api/auth/refresh", "unknown field", b'{"refresh_token": "x", "x": 1}', 422, "unknown_field"),
    ("/api/auth/logout", "missing", b"{}", 422, "missing_field"),
    ("/api/auth/logout", "garbage token", b'{"refresh_token": "\\u0000"}', 401, "malformed_token"),
]


@pytest.mark.parametrize(
    ("path", "case", "raw", "status", "code"), BAD_BODIES, ids=[f"{p}:{c}" for p, c, *_ in BAD_BODIES]
)
async def test_bad_bodies_get_a_specific_4xx(
    api: httpx.AsyncClient, path: str, case: str, raw: bytes | str, status: int, code: str
) -> None:
    resp = await api.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == status, f"{case}: {resp.text}"
    assert error_code(resp) == code
    assert set(resp.json()) == {"error"}


async def test_wrong_content_type_is_415(api: httpx.AsyncClient) -> None:
    resp = await api.post("/api/auth/dev", content=b"email=a@b.c", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert error_code(resp) == "unsupported_media_type"


async def test_rate_limit_answers_429_with_retry_after(api_app: Starlette, stores: Stores) -> None:
    transport = httpx.ASGITransport(app=api_app, client=("198.51.100.7", 4000))
    limit = api_app.state.auth.limit.limit
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        statuses = [(await client.post("/api/auth/refresh", json={})).status_code for _ in range(limit)]
        assert 429 not in statuses
        resp = await client.post("/api/auth/refresh", json={})
        assert resp.status_code == 429
        assert error_code(resp) == "rate_limited"
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
        # Also before any work: a valid login is refused while limited.
        resp = await client.post("/api/auth/dev", json={"email": unique_email()})
        assert resp.status_code == 429
    other = httpx.ASGITransport(app=api_app, client=("198.51.100.8", 4000))
    async with httpx.AsyncClient(transport=other, base_url="http://api.test") as client:
        assert (await client.post("/api/auth/dev", json={"email": unique_email()})).status_code == 200
    ttl = await stores.redis.ttl(stores.keys.ratelimit("auth", "198.51.100.7"))
    assert 0 < ttl <= 60


async def test_me_is_not_rate_limited_and_health_still_serves(api: httpx.AsyncClient) -> None:
    session = await dev_login(api)
    for _ in range(70):
        assert (await api.get("/api/me", headers=bearer(session["access_token"]))).status_code == 200
    assert (await api.get("/healthz")).status_code == 200
