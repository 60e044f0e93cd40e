"""The trade REST API over HTTP against real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette

from ftl.persistence.processes import free_port
from ftl.persistence.stores import Stores
from tests.persistence.support import make_instrument, make_trader
from tests.trading.support import snapshot

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def auth_for(api_app: Starlette) -> Headers:
    def headers(user_id: int, key: str | None = "auto") -> dict[str, str]:
        out = {"Authorization": f"Bearer {api_app.state.tokens.issue_access(user_id)}"}
        if key is not None:
            out["Idempotency-Key"] = secrets.token_hex(8) if key == "auto" else key
        return out

    return headers


def _open_body(iid: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "instrument_id": iid,
        "side": "long",
        "qty": 10,
        "leverage": 2,
        "acceptable_price": 2000,
    }
    body.update(over)
    return body


async def _count(stores: Stores, sql: str, *args: Any) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(sql, args)
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_open_then_close_round_trip(api: httpx.AsyncClient, stores: Stores, auth_for: Headers) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    r = await api.post("/api/positions/open", json=_open_body(iid), headers=auth_for(user))
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"position", "trade", "wallet"}
    pos, trade, wallet = body["position"], body["trade"], body["wallet"]
    assert pos["side"] == "long" and pos["qty"] == 10 and trade["price"] <= 2000
    assert wallet["available"] == 1_000_000 - trade["margin"] - trade["fee"]
    # a 2xx means PostgreSQL has the trade
    assert await _count(stores, "SELECT count(*) FROM trades WHERE id = %s", trade["id"]) == 1

    port = (await api.get("/api/portfolio", headers=auth_for(user, None))).json()
    assert [p["id"] for p in port["positions"]] == [pos["id"]]
    assert port["positions"][0]["unrealised_pnl"] <= 0

    r = await api.post(
        f"/api/positions/{pos['id']}/close", json={"qty": 4, "acceptable_price": 1}, headers=auth_for(user)
    )
    assert r.status_code == 200, r.text
    assert r.json()["position"]["qty"] == 6
    r = await api.post(
        f"/api/positions/{pos['id']}/close", json={"acceptable_price": 1}, headers=auth_for(user)
    )
    assert r.status_code == 200 and r.json()["position"]["status"] == "closed"
    trades = (await api.get("/api/trades", headers=auth_for(user, None))).json()["items"]
    assert [t["kind"] for t in trades] == ["close", "close", "open"]
    port = (await api.get("/api/portfolio", headers=auth_for(user, None))).json()
    assert port["positions"] == [] and port["wallet"]["locked"] == 0


async def test_idempotency_key_replays_or_conflicts(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    h = auth_for(user, "same-key")
    first = await api.post("/api/positions/open", json=_open_body(iid), headers=h)
    again = await api.post("/api/positions/open", json=_open_body(iid), headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json()["trade"]["id"] == first.json()["trade"]["id"]
    other = await api.post("/api/positions/open", json=_open_body(iid, qty=11), headers=h)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    assert await _count(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user) == 1


BAD_BODIES: list[tuple[Any, int, str]] = [
    (b"{not json", 400, "malformed_json"),
    (b"[1, 2]", 400, "malformed_json"),
    ({"instrument_id": 1}, 422, "missing_field"),
    ({**{"x": 1}}, 422, "unknown_field"),
    ("qty=0", 422, "out_of_range"),
    ("qty=-5", 422, "out_of_range"),
    ("qty=9223372036854775808", 422, "out_of_range"),
    ("qty=1.5", 422, "invalid_field"),
    ("qty='10'", 422, "invalid_field"),
    ("qty=True", 422, "invalid_field"),
    ("leverage=0", 422, "out_of_range"),
    ("leverage=50", 422, "out_of_range"),
    ("acceptable_price=1000.5", 422, "invalid_field"),
    ("side='up'", 422, "invalid_field"),
    ("extra=1", 422, "unknown_field"),
    ("instrument_id=999999999999", 404, "unknown_instrument"),
]


@pytest.mark.parametrize(("bad", "status", "code"), BAD_BODIES)
async def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers, bad: Any, status: int, code: str
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    before = await snapshot(stores.redis, stores.keys)
    trades_before = await _count(stores, "SELECT count(*) FROM trades")
    if isinstance(bad, bytes):
        r = await api.post(
            "/api/positions/open", content=bad, headers=auth_for(user) | {"Content-Type": "application/json"}
        )
    elif isinstance(bad, dict):
        body = bad if "x" not in bad else {**_open_body(iid), "x": 1}
        r = await api.post("/api/positions/open", json=body, headers=auth_for(user))
    else:
        name, _, value = bad.partition("=")
        r = await api.post(
            "/api/positions/open",
            json=_open_body(iid, **{name: eval(value)}),  # noqa: S307 - test table
            headers=auth_for(user),
        )
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert await snapshot(stores.redis, stores.keys) == before
    assert await _count(stores, "SELECT count(*) FROM trades") == trades_before


async def test_headers_and_ownership(api: httpx.AsyncClient, stores: Stores, auth_for: Headers) -> None:
    owner, other = await make_trader(stores), await make_trader(stores)
    iid = await make_instrument(stores)
    r = await api.post("/api/positions/open", json=_open_body(iid), headers=auth_for(owner, None))
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_idempotency_key"
    r = await api.post("/api/positions/open", json=_open_body(iid))
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
    r = await api.post("/api/positions/open", json=_open_body(iid), headers=auth_for(owner))
    pid = r.json()["position"]["id"]
    before = await snapshot(stores.redis, stores.keys)
    r = await api.post(f"/api/positions/{pid}/close", json={"acceptable_price": 1}, headers=auth_for(other))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert await snapshot(stores.redis, stores.keys) == before
    r = await api.post("/api/positions/abc/close", json={"acceptable_price": 1}, headers=auth_for(owner))
    assert r.status_code == 404


async def test_slippage_is_rejected_without_change(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores, index=1000)
    before = await snapshot(stores.redis, stores.keys)
    r = await api.post(
        "/api/positions/open", json=_open_body(iid, acceptable_price=999), headers=auth_for(user)
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "slippage"
    assert await snapshot(stores.redis, stores.keys) == before


async def test_instruments_list_one_and_quote(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    user = await make_trader(stores)
    ids = sorted([await make_instrument(stores, index=1000 + i) for i in range(3)])
    h = auth_for(user, None)
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", "team": "T"} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/api/instruments", params=params, headers=h)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(ids) <= set(seen) and seen == sorted(seen)
    one = (await api.get(f"/api/instruments/{ids[0]}", headers=h)).json()
    assert one["price"] == one["index_price"] and one["status"] == "open"
    assert one["index_price"] in (1000, 1001, 1002) and one["skew"] == 0
    q = (
        await api.get(
            f"/api/instruments/{ids[0]}/quote",
            params={"side": "long", "qty": "10", "leverage": "2"},
            headers=h,
        )
    ).json()
    assert q["price"] >= one["index_price"] and q["margin"] == -(-q["notional"] // 2) and q["fee"] >= 1
    bad = await api.get(f"/api/instruments/{ids[0]}/quote", params={"side": "x", "qty": "1"}, headers=h)
    assert bad.status_code == 422
    assert (await api.get("/api/instruments/424242424242", headers=h)).status_code == 404


async def test_concurrent_opens_over_http_never_overspend(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    iid = await make_instrument(stores, index=100)
    q = (
        await api.get(
            f"/api/instruments/{iid}/quote",
            params={"side": "long", "qty": "1", "leverage": "1"},
            headers=auth_for(await make_trader(stores), None),
        )
    ).json()
    cost = q["margin"] + q["fee"]
    affordable = 20
    user = await make_trader(stores, balance=affordable * cost + cost // 2)

    async def one() -> int:
        r = await api.post(
            "/api/positions/open",
            json=_open_body(iid, qty=1, leverage=1, acceptable_price=10**6),
            headers=auth_for(user),
        )
        return r.status_code

    statuses = await asyncio.gather(*(one() for _ in range(200)))
    # the skew moves the price up a little; never more than the affordable count succeed
    assert 0 < statuses.count(201) <= affordable
    assert set(statuses) <= {201, 409}
    available = int(await stores.redis.hget(stores.keys.wallet(user), "available") or -1)
    assert available >= 0
    assert await _count(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user) == statuses.count(201)


async def test_postgres_down_answers_503_and_trades_nothing(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    """The ledger becomes unreachable: the first trade runs in Redis and cannot be confirmed (503
    outcome_unknown: the outbox keeps it for the flusher); from then on trades are refused
    before their script runs (503 database_unavailable, nothing traded) until it answers."""
    user, iid = await make_trader(stores), await make_instrument(stores)
    warm = await api.post("/api/positions/open", json=_open_body(iid), headers=auth_for(user))
    assert warm.status_code == 201  # the api process knows this trader already
    h = auth_for(user, "pg-down")
    good = stores.pg
    dead: AsyncConnectionPool[Any] = AsyncConnectionPool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/x", min_size=1, open=False, timeout=0.5
    )
    await dead.open(wait=False)
    good_ledger = stores.ledger_pool
    stores.pg = stores.ledger_pool = dead
    try:
        first = await api.post("/api/positions/open", json=_open_body(iid), headers=h)
        wallet = await stores.redis.hgetall(stores.keys.wallet(user))
        r = await api.post("/api/positions/open", json=_open_body(iid), headers=auth_for(user, "k2"))
    finally:
        stores.pg, stores.ledger_pool = good, good_ledger
        await dead.close()
    assert first.status_code == 503 and first.json()["error"]["code"] == "outcome_unknown", first.text
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "database_unavailable"
    assert await stores.redis.hgetall(stores.keys.wallet(user)) == wallet  # nothing traded
    again = await api.post("/api/positions/open", json=_open_body(iid), headers=h)
    assert again.status_code == 201
    tid = again.json()["trade"]["id"]
    stores.pg = dead  # an uncached lookup with PostgreSQL down: a clear 503, not a 500
    try:
        r = await api.get("/api/trades", headers=auth_for(user, None))
    finally:
        stores.pg = good
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
    assert await _count(stores, "SELECT count(*) FROM trades WHERE id = %s", tid) == 1


# Each query/path value that once answered 500 or was silently read as a number.
BAD_QUERIES: list[tuple[str, dict[str, str], int, str, str | None]] = [
    ("/api/instruments", {"limit": "²"}, 422, "invalid_field", "limit"),
    ("/api/instruments", {"limit": "--5"}, 422, "invalid_field", "limit"),
    ("/api/instruments", {"limit": "\u0665"}, 422, "invalid_field", "limit"),  # Arabic-Indic 5
    ("/api/instruments", {"limit": "+5"}, 422, "invalid_field", "limit"),
    ("/api/instruments", {"limit": "1" * 5000}, 422, "out_of_range", "limit"),
    ("/api/instruments", {"cursor": "1_0"}, 422, "invalid_field", "cursor"),
    ("/api/instruments", {"team": "Arsenal\x00"}, 422, "invalid_field", "team"),
    ("/api/instruments", {"position": "\x00"}, 422, "invalid_field", "position"),
    ("/api/instruments/²", {}, 404, "not_found", None),
    ("/api/instruments/\u0661", {}, 404, "not_found", None),  # Arabic-Indic 1
    ("/api/instruments/{iid}/quote", {"side": "long", "qty": "\u0661\u0660"}, 422, "invalid_field", "qty"),
    ("/api/instruments/{iid}/ticks", {"before": "253402300800000"}, 422, "out_of_range", "before"),
    ("/api/instruments/{iid}/ticks", {"before": "9" * 30}, 422, "out_of_range", "before"),
    ("/api/instruments/{iid}/ticks", {"limit": "²"}, 422, "invalid_field", "limit"),
    ("/api/instruments/²/ticks", {}, 404, "not_found", None),
    ("/api/trades", {"before": "\u0663"}, 422, "invalid_field", "before"),
    ("/api/leaderboard", {"limit": "²"}, 422, "invalid_field", "limit"),
    ("/api/leaderboard", {"scope": "district", "district_id": "\u0667"}, 422, "invalid_field", "district_id"),
    # an integer parameter present but empty is not an integer (absent is its default)
    ("/api/instruments", {"cursor": ""}, 422, "invalid_field", "cursor"),
    ("/api/trades", {"limit": ""}, 422, "invalid_field", "limit"),
    # a valid request the caller's state cannot serve: he is in no district
    ("/api/leaderboard", {"scope": "district"}, 404, "no_district", None),
]


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "field"),
    BAD_QUERIES,
    ids=[f"{p}?{q}"[:60] for p, q, *_ in BAD_QUERIES],
)
async def test_bad_query_and_path_values_are_a_clear_4xx(
    api: httpx.AsyncClient,
    stores: Stores,
    auth_for: Headers,
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    r = await api.get(path.format(iid=iid), params=params, headers=auth_for(user, None))
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"].get("field") == field


async def test_ticks_before_the_end_of_year_9999_is_fine(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    r = await api.get(
        f"/api/instruments/{iid}/ticks", params={"before": "253402300799999"}, headers=auth_for(user, None)
    )
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["items"], list)


async def test_close_of_a_non_ascii_position_id_is_404_and_changes_nothing(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    opened = await api.post("/api/positions/open", json=_open_body(iid), headers=auth_for(user))
    assert opened.status_code == 201
    before = await snapshot(stores.redis, stores.keys)
    for pid in ("²", "\u0661", "--1"):
        r = await api.post(
            f"/api/positions/{pid}/close", json={"acceptable_price": 1}, headers=auth_for(user)
        )
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
    assert await snapshot(stores.redis, stores.keys) == before


@pytest.mark.parametrize(
    "ctype", [None, "text/json", "application/jsonx-evil", "text/plain", "application/json; charset=latin-1"]
)
async def test_a_trade_needs_application_json(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers, ctype: str | None
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    before = await snapshot(stores.redis, stores.keys)
    trades_before = await _count(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user)
    headers = auth_for(user) | ({} if ctype is None else {"Content-Type": ctype})
    r = await api.post("/api/positions/open", content=json.dumps(_open_body(iid)), headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "unsupported_media_type"
    assert await snapshot(stores.redis, stores.keys) == before
    assert await _count(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user) == trades_before


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "Application/JSON"])
async def test_a_trade_with_an_exact_json_media_type_is_fine(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers, ctype: str
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    headers = auth_for(user) | {"Content-Type": ctype}
    r = await api.post("/api/positions/open", content=json.dumps(_open_body(iid)), headers=headers)
    assert r.status_code == 201, r.text


async def test_a_trade_naming_a_field_twice_is_422_and_changes_nothing(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    before = await snapshot(stores.redis, stores.keys)
    raw = json.dumps(_open_body(iid, qty=1))[:-1] + ', "qty": 100}'
    headers = auth_for(user) | {"Content-Type": "application/json"}
    r = await api.post("/api/positions/open", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("duplicate_key", "qty")
    assert await snapshot(stores.redis, stores.keys) == before
    assert await _count(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user) == 0


async def test_integral_json_numbers_are_integers_and_others_are_not(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    """JSON (and JSON Schema) hold 2 and 2.0 to be the same number; 2.5 is no integer."""
    user, iid = await make_trader(stores), await make_instrument(stores)
    bad = await api.post("/api/positions/open", json=_open_body(iid, qty=2.5), headers=auth_for(user, "f1"))
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_field")
    ok = await api.post(
        "/api/positions/open", json=_open_body(iid, qty=2.0, leverage=1.0), headers=auth_for(user, "f2")
    )
    assert ok.status_code == 201, ok.text
    assert (ok.json()["trade"]["qty"], ok.json()["position"]["leverage"]) == (2, 1)


async def test_closing_more_than_the_position_holds_is_409_and_changes_nothing(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    opened = await api.post("/api/positions/open", json=_open_body(iid, qty=3), headers=auth_for(user, "o"))
    pid = opened.json()["position"]["id"]
    wallet = await stores.redis.hgetall(stores.keys.wallet(user))
    r = await api.post(
        f"/api/positions/{pid}/close", json={"qty": 4, "acceptable_price": 1}, headers=auth_for(user, "c")
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "qty_exceeds_position"), r.text
    assert await stores.redis.hgetall(stores.keys.wallet(user)) == wallet
