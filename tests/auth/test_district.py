"""A district given at a later login reaches the hot wallet and the district leaderboard."""

from __future__ import annotations

import secrets

import httpx

from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import OpenResult
from tests.auth.fake_google import mint
from tests.auth.support import bearer, dev_login, unique_email
from tests.persistence.support import load_used_keys, make_instrument, trading


async def _check_district_7(stores: Stores, user_id: int) -> None:
    """Hot wallet says 7, the user is on board 7 with his equity, and a trade in 7 is accepted."""
    start = stores.settings.start_balance
    assert await stores.redis.hget(stores.keys.wallet(user_id), "district") == b"7"
    board = stores.keys.leaderboard_district(7)
    assert await stores.redis.zscore(board, str(user_id)) == start
    iid = await make_instrument(stores)
    await load_used_keys(stores, user_id)
    opened = await trading(stores).open(
        user_id=user_id,
        instrument_id=iid,
        side="short",
        qty=5,
        leverage=1,
        acceptable_price=1,
        idempotency_key=secrets.token_hex(8),
        district_id=7,
    )
    assert isinstance(opened, OpenResult), opened
    assert await stores.redis.zscore(board, str(user_id)) == opened.equity


async def test_dev_login_with_a_district_after_one_without(api: httpx.AsyncClient, stores: Stores) -> None:
    email = unique_email()
    first = await dev_login(api, email)
    user_id = first["user"]["id"]
    assert first["user"]["district_id"] is None
    assert await stores.redis.hget(stores.keys.wallet(user_id), "district") == b""
    again = await dev_login(api, email, district_id=7)
    assert again["user"]["district_id"] == 7
    await _check_district_7(stores, user_id)
    # A district is set once: a later login naming another one changes nothing.
    assert (await dev_login(api, email, district_id=9))["user"]["district_id"] == 7
    assert (await dev_login(api, email))["user"]["district_id"] == 7
    assert await stores.redis.hget(stores.keys.wallet(user_id), "district") == b"7"
    assert await stores.redis.zscore(stores.keys.leaderboard_district(9), str(user_id)) is None


async def test_google_login_with_a_district_after_one_without(api: httpx.AsyncClient, stores: Stores) -> None:
    sub = str(10**15 + secrets.randbelow(10**15))
    email = f"g-{secrets.token_hex(4)}@example.com"
    first = await api.post("/api/auth/google", json={"id_token": mint("g1", sub=sub, email=email)})
    assert first.status_code == 200, first.text
    user_id = first.json()["user"]["id"]
    assert await stores.redis.hget(stores.keys.wallet(user_id), "district") == b""
    again = await api.post(
        "/api/auth/google", json={"id_token": mint("g1", sub=sub, email=email), "district_id": 7}
    )
    assert again.status_code == 200, again.text
    assert again.json()["user"]["district_id"] == 7
    await _check_district_7(stores, user_id)


async def test_google_login_adopting_a_dev_account_brings_its_district(
    api: httpx.AsyncClient, stores: Stores
) -> None:
    email = unique_email()
    user_id = (await dev_login(api, email))["user"]["id"]  # hot wallet with district ''
    sub = str(10**15 + secrets.randbelow(10**15))
    resp = await api.post(
        "/api/auth/google", json={"id_token": mint("g1", sub=sub, email=email), "district_id": 7}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["id"] == user_id
    await _check_district_7(stores, user_id)


async def test_api_trade_after_the_district_login_despite_the_cached_district(
    api: httpx.AsyncClient, stores: Stores
) -> None:
    """The api caches a trader's district per process (Traders): a trade before the district login
    caches None, and the next trade must still go through, on the district board."""
    email = unique_email()
    first = await dev_login(api, email)
    user_id, auth = first["user"]["id"], bearer(first["access_token"])
    iid = await make_instrument(stores)
    body = {"instrument_id": iid, "side": "long", "qty": 1, "leverage": 1, "acceptable_price": 10**6}
    before = await api.post("/api/positions/open", json=body, headers={**auth, "Idempotency-Key": "a"})
    assert before.status_code == 201, before.text
    await dev_login(api, email, district_id=7)
    after = await api.post("/api/positions/open", json=body, headers={**auth, "Idempotency-Key": "b"})
    assert after.status_code == 201, after.text
    board = stores.keys.leaderboard_district(7)
    assert await stores.redis.zscore(board, str(user_id)) == after.json()["wallet"]["equity"]
