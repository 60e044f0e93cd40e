"""``GET /api/instruments/{id}/ticks``: the index price history of one instrument."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ftl.persistence.stores import Stores
from ftl.pricing.ticks import read_ticks
from ftl.web import validate as v

MAX_TICKS = 1000
"""Most ticks one page holds (``limit``)."""
MAX_MS = v.MAX_MS
"""``before`` is at most the end of year 9999: later instants are no Python (or psycopg) datetime."""


def pricing_routes(stores: Stores, authenticate: Callable[[Request], Awaitable[Any]]) -> list[BaseRoute]:
    async def ticks(request: Request) -> Response:
        await authenticate(request)
        iid = v.path_id(request)
        limit = v.query_int(request, "limit", 100, 1, MAX_TICKS) or 100
        before = v.query_int(request, "before", None, 1, MAX_MS)
        async with stores.pg.connection() as conn:
            return JSONResponse(await read_ticks(conn, iid, limit=limit, before=before))

    return [Route("/api/instruments/{id}/ticks", ticks, methods=["GET"])]
