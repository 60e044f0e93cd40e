"""GET /api/leaderboard over HTTP against real Redis and PostgreSQL: order, tie-break, scopes, errors."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from ftl.persistence.stores import Stores
from ftl.worker.marks import Marks
from tests.persistence.support import make_trader

T0 = 1_781_000_000_000  # ms, mid June 2026
Headers = Callable[[int], dict[str, str]]


@pytest.fixture
def auth_for(api_app: Starlette) -> Headers:
    def headers(user_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_app.state.tokens.issue_access(user_id)}"}

    return headers


async def _rename(stores: Stores, user: int, name: str) -> None:
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE users SET name = %s WHERE id = %s", (name, user))


async def test_order_tie_break_me_and_district_scope(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    a = await make_trader(stores, district=7)
    b = await make_trader(stores, district=7)
    c = await make_trader(stores, 1_500_000, district=8)
    loner = await make_trader(stores, 500_000)
    for user, name in ((a, "Ada"), (b, "Bo"), (c, "Cy"), (loner, "Lo")):
        await _rename(stores, user, name)
    marks = Marks(stores)
    # b reaches 1,000,000 first, a ten seconds later: equal equity, b ranks ahead
    await marks.remark([b, c, loner], now=T0)
    await marks.remark([a], now=T0 + 10_000)
    await marks.remark([a, b, c, loner], now=T0 + 60_000)  # unchanged equity keeps its reach time

    r = await api.get("/api/leaderboard", headers=auth_for(a))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["entries"] == [
        {"rank": 1, "user_id": c, "name": "Cy", "equity": 1_500_000},
        {"rank": 2, "user_id": b, "name": "Bo", "equity": 1_000_000},
        {"rank": 3, "user_id": a, "name": "Ada", "equity": 1_000_000},
        {"rank": 4, "user_id": loner, "name": "Lo", "equity": 500_000},
    ]
    assert body["me"] == {"rank": 3, "equity": 1_000_000}

    r = await api.get("/api/leaderboard", params={"limit": 2, "scope": "overall"}, headers=auth_for(loner))
    assert [e["user_id"] for e in r.json()["entries"]] == [c, b]
    assert r.json()["me"] == {"rank": 4, "equity": 500_000}

    # district scope: the caller's own district by default, or the one asked for
    r = await api.get("/api/leaderboard", params={"scope": "district"}, headers=auth_for(a))
    assert [(e["rank"], e["user_id"]) for e in r.json()["entries"]] == [(1, b), (2, a)]
    assert r.json()["me"] == {"rank": 2, "equity": 1_000_000}
    r = await api.get("/api/leaderboard", params={"scope": "district", "district_id": 8}, headers=auth_for(a))
    assert r.status_code == 200, r.text
    assert [e["user_id"] for e in r.json()["entries"]] == [c]
    assert r.json()["me"] == {"rank": None, "equity": 1_000_000}  # not on that board
    # a district named without a scope is that district's board; with scope=overall it plays no part
    r = await api.get("/api/leaderboard", params={"district_id": 8}, headers=auth_for(a))
    assert [e["user_id"] for e in r.json()["entries"]] == [c]
    r = await api.get("/api/leaderboard", params={"scope": "overall", "district_id": 8}, headers=auth_for(a))
    assert [e["user_id"] for e in r.json()["entries"]] == [c, b, a, loner]


async def test_me_without_a_score_still_has_equity(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers
) -> None:
    user = await make_trader(stores, 123_456)
    r = await api.get("/api/leaderboard", headers=auth_for(user))
    assert r.status_code == 200
    assert r.json() == {"entries": [], "me": {"rank": None, "equity": 123_456}}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"scope": "world"}, "invalid_field"),
        ({"limit": "0"}, "out_of_range"),
        ({"limit": "201"}, "out_of_range"),
        ({"limit": "ten"}, "invalid_field"),
        ({"limit": "9" * 40}, "out_of_range"),  # an integer, past the limit
        ({"scope": "district", "district_id": "x"}, "invalid_field"),
        ({"scope": "district", "district_id": "0"}, "out_of_range"),
    ],
)
async def test_bad_query_params_get_a_4xx_with_a_code(
    api: httpx.AsyncClient, stores: Stores, auth_for: Headers, params: dict[str, str], code: str
) -> None:
    user = await make_trader(stores)
    r = await api.get("/api/leaderboard", params=params, headers=auth_for(user))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code


async def test_leaderboard_needs_a_token(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/leaderboard")
    assert r.status_code == 401
