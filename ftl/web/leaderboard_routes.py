"""REST route of the leaderboards: ``GET /api/leaderboard?scope=&district_id=&limit=``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ftl.errors import Kind, Refused
from ftl.persistence.stores import Stores
from ftl.trading.leaderboard import SCOPES, Boards, board_key
from ftl.trading.service import Trader
from ftl.web import validate as v

Authenticate = Callable[[Request], Awaitable[Trader]]
MAX_DISTRICT = 2**31 - 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def leaderboard_routes(stores: Stores, authenticate: Authenticate) -> list[BaseRoute]:
    boards = Boards(stores)

    async def leaderboard(request: Request) -> Response:
        trader = await authenticate(request)
        limit = v.query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        district = v.query_int(request, "district_id", None, 1, MAX_DISTRICT)
        # No scope: the district board when a district is named, else the overall one. With
        # scope=overall a district_id plays no part (each parameter valid alone stays valid).
        scope = request.query_params.get("scope") or ("district" if district is not None else "overall")
        if scope not in SCOPES:
            raise v.invalid("scope", "must be overall or district")
        if scope == "district":
            district = district if district is not None else trader.district_id
            if district is None:
                # a valid request the caller's state cannot serve: no board of his own
                raise Refused(
                    Kind.NOT_FOUND, "no_district", "you are in no district: name one with district_id"
                )
        key = board_key(stores, scope, district)
        entries = await boards.top(key, limit)
        rank, equity = await boards.me(key, trader.user_id)
        return JSONResponse(
            {"entries": [e.as_json() for e in entries], "me": {"rank": rank, "equity": equity}}
        )

    return [Route("/api/leaderboard", leaderboard, methods=["GET"])]
