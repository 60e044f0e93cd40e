"""``/healthz``, ``/readyz`` and ``/metrics`` as starlette routes, for the api and ws roles."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ftl.health import Health, metrics_payload


def health_routes(health: Health) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok, detail = await health.readiness()
        return JSONResponse(detail, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        payload, ctype = metrics_payload()
        return Response(payload, media_type=ctype)

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
