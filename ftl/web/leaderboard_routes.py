"""REST route of the leaderboards: ``GET /api/leaderboard?scope=&district_id=&limit=``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ftl.errors import Kind, Refused
from ftl.persistence.stores import Stores
from ftl.trading.leaderboard import SCOPES, Boards, board_key
from ftl.trading.service import Trader
from ftl.web import decode
from ftl.web import replies as out
from ftl.web.bodies import LeaderboardQuery
from ftl.web.replies import StructResponse

Authenticate = Callable[[Request], Awaitable[Trader]]


def leaderboard_routes(stores: Stores, authenticate: Authenticate) -> list[BaseRoute]:
    boards = Boards(stores)

    async def leaderboard(request: Request) -> Response:
        trader = await authenticate(request)
        q = decode.query(request, LeaderboardQuery)
        district = q.district_id
        # No scope: the district board when a district is named, else the overall one. With
        # scope=overall a district_id plays no part (each parameter valid alone stays valid).
        scope = q.scope or ("district" if district is not None else "overall")
        assert scope in SCOPES
        if scope == "district":
            district = district if district is not None else trader.district_id
            if district is None:
                # a valid request the caller's state cannot serve: no board of his own
                raise Refused(
                    Kind.NOT_FOUND, "no_district", "you are in no district: name one with district_id"
                )
        key = board_key(stores, scope, district)
        entries = await boards.top(key, q.limit)
        rank, equity = await boards.me(key, trader.user_id)
        board = out.Leaderboard([out.convert(e, out.BoardEntry) for e in entries], out.MyRank(rank, equity))
        return StructResponse(board)

    return [Route("/api/leaderboard", leaderboard, methods=["GET"])]
