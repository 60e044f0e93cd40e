"""The api role's starlette application: REST routes of every feature plus health endpoints."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ftl.auth.service import AuthService
from ftl.health import Health
from ftl.persistence.stores import Stores
from ftl.persistence.trade_scripts import TradingConfig, TradingScripts
from ftl.trading.service import Trader, Traders
from ftl.web import api_docs, openapi
from ftl.web.auth_deps import current_user
from ftl.web.auth_routes import auth_routes, mount_auth
from ftl.web.errors import EXCEPTION_HANDLERS
from ftl.web.health_routes import health_routes
from ftl.web.leaderboard_routes import leaderboard_routes
from ftl.web.pricing_routes import pricing_routes
from ftl.web.static_routes import static_routes
from ftl.web.trading_routes import trading_routes


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.document())  # built once (cached)


async def openapi_page(request: Request) -> Response:
    return HTMLResponse(api_docs.docs_page())


def build_api(stores: Stores, health: Health) -> Starlette:
    auth = AuthService.create(stores)
    s = stores.settings
    scripts = TradingScripts(
        stores.scripts,
        stores.keys,
        TradingConfig(fee_bps=s.fee_bps, mm_bps=s.mm_bps, max_index_age_ms=s.max_index_age_s * 1000),
    )
    traders = Traders(stores)

    async def authenticate(request: Request) -> Trader:
        principal = await current_user(request)
        return await traders.of(principal.user_id)

    routes: list[BaseRoute] = [
        *health_routes(health),
        *auth_routes(),
        *trading_routes(stores, scripts, authenticate, traders),
        *pricing_routes(stores, authenticate),
        *leaderboard_routes(stores, authenticate),
        Route("/api/openapi.json", openapi_json, methods=["GET"]),
        Route("/api/docs", openapi_page, methods=["GET"]),
        *static_routes(stores.settings),
    ]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=auth.lifespan)
    mount_auth(app, auth)
    return app
