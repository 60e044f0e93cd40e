"""REST route of the leaderboards: ``GET /api/leaderboard?scope=&district_id=&limit=``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ftl.stores import Stores
from ftl.trading.leaderboard import SCOPES, Boards, board_key
from ftl.trading.service import Trader
from ftl.web import validate as v
from ftl.web.errors import ApiError

Authenticate = Callable[[Request], Awaitable[Trader]]
MAX_DISTRICT = 2**31 - 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def leaderboard_routes(stores: Stores, authenticate: Authenticate) -> list[BaseRoute]:
    boards = Boards(stores)

    async def leaderboard(request: Request) -> Response:
        trader = await authenticate(request)
        scope = request.query_params.get("scope") or "overall"
        if scope not in SCOPES:
            raise v.invalid("scope", "must be overall or district")
        limit = v.query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        district = v.query_int(request, "district_id", None, 1, MAX_DISTRICT)
        if scope == "overall" and district is not None:
            raise v.invalid("district_id", "only with scope=district")
        if scope == "district":
            district = district if district is not None else trader.district_id
            if district is None:
                raise ApiError(
                    422,
                    "missing_field",
                    "district_id is required: you are in no district",
                    extra={"field": "district_id"},
                )
        key = board_key(stores, scope, district)
        entries = await boards.top(key, limit)
        rank, equity = await boards.me(key, trader.user_id)
        return JSONResponse(
            {"entries": [e.as_json() for e in entries], "me": {"rank": rank, "equity": equity}}
        )

    return [Route("/api/leaderboard", leaderboard, methods=["GET"])]
