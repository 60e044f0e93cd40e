"""The api role's starlette application: REST routes of every feature plus health endpoints."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from ftl.health import Health
from ftl.stores import Stores
from ftl.web.errors import EXCEPTION_HANDLERS
from ftl.web.health_routes import health_routes


def build_api(stores: Stores, health: Health) -> Starlette:
    routes: list[BaseRoute] = [*health_routes(health)]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
