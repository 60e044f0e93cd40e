"""``GET /api/instruments/{id}/ticks``: the index price history of one instrument."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ftl.persistence.stores import Stores
from ftl.pricing.ticks import read_ticks
from ftl.web import decode
from ftl.web import replies as out
from ftl.web.bodies import TicksQuery
from ftl.web.replies import StructResponse
from ftl.web.validate import path_id


def pricing_routes(stores: Stores, authenticate: Callable[[Request], Awaitable[Any]]) -> list[BaseRoute]:
    async def ticks(request: Request) -> Response:
        await authenticate(request)
        iid = path_id(request)
        q = decode.query(request, TicksQuery)  # before: at most year 9999, a Python datetime
        async with stores.pg.connection() as conn:
            page = await read_ticks(conn, iid, limit=q.limit, before=q.before)
        return StructResponse(out.convert(page, out.TickPage))

    return [Route("/api/instruments/{id}/ticks", ticks, methods=["GET"])]
