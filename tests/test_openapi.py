"""The OpenAPI document covers every REST route the api role serves."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette
from starlette.routing import Route


async def test_openapi_covers_every_api_route(api: httpx.AsyncClient, api_app: Starlette) -> None:
    doc = (await api.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    served = {
        (method.lower(), route.path)
        for route in api_app.routes
        if isinstance(route, Route)
        and route.path.startswith("/api/")
        and route.path not in ("/api/openapi.json", "/api/docs")
        for method in (route.methods or ())
        if method != "HEAD"
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["summary"] and "4XX" in op["responses"]


async def test_human_docs_page(api: httpx.AsyncClient) -> None:
    page = await api.get("/api/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "POST /api/positions/open" in page.text  # the table for browsers without JavaScript
    # Swagger UI is served by the api itself (vendored), never from a CDN
    assert "//" not in page.text.replace("https://", "").split("<noscript>")[0]
    for asset in re.findall(r"(?:src|href)=(/static/[^ >]+)", page.text):
        got = await api.get(asset)
        assert got.status_code == 200, asset
    bundle = await api.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text and "javascript" in bundle.headers["content-type"]
