"""The auth endpoints: /api/auth/{google,refresh,logout,dev} and GET /api/me."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ftl.auth import users
from ftl.auth.failures import token_error
from ftl.auth.service import AuthService
from ftl.errors import Kind, Refused
from ftl.web import auth_body as body
from ftl.web.auth_deps import current_user


def mount_auth(app: Starlette, service: AuthService) -> None:
    """Make ``service`` the auth of ``app``: ``app.state.auth``, and ``app.state.tokens`` for
    :func:`ftl.web.auth_deps.current_user`. Close it with ``lifespan=service.lifespan``."""
    app.state.auth = service
    app.state.tokens = service.tokens


def auth_routes() -> list[BaseRoute]:
    return [
        Route("/api/auth/google", google_login, methods=["POST"]),
        Route("/api/auth/refresh", refresh, methods=["POST"]),
        Route("/api/auth/logout", logout, methods=["POST"]),
        Route("/api/auth/dev", dev_login, methods=["POST"]),
        Route("/api/me", me, methods=["GET"]),
    ]


async def _service(request: Request) -> AuthService:
    """The app's auth service, once this client is within its rate limit."""
    service: AuthService = request.app.state.auth
    await service.limit.hit(request.client.host if request.client else "unknown")
    return service


async def google_login(request: Request) -> Response:
    service = await _service(request)
    data = await body.read_object(request, ("id_token", "district_id"), ("id_token",))
    district = body.district(data)
    reply = await service.google_login(body.token_field(data, "id_token"), district)
    return JSONResponse(reply)


async def dev_login(request: Request) -> Response:
    service: AuthService = request.app.state.auth
    if service.stores.settings.production:
        raise Refused(Kind.NOT_FOUND, "not_found", "Not Found")
    service = await _service(request)
    data = await body.read_object(request, ("email", "name", "district_id"), ("email",))
    email = body.email(data)
    name = body.optional_str(data, "name", 200)
    reply = await service.dev_login(email, name, body.district(data))
    return JSONResponse(reply)


async def refresh(request: Request) -> Response:
    service = await _service(request)
    data = await body.read_object(request, ("refresh_token",), ("refresh_token",))
    return JSONResponse(await service.refresh(body.token_field(data, "refresh_token")))


async def logout(request: Request) -> Response:
    service = await _service(request)
    data = await body.read_object(request, ("refresh_token",), ("refresh_token",))
    await service.logout(body.token_field(data, "refresh_token"))
    return Response(status_code=204)


async def me(request: Request) -> Response:
    principal = await current_user(request)
    service: AuthService = request.app.state.auth
    found = await users.profile(service.stores, principal.user_id)
    if found is None:
        raise token_error("unknown_user", "the account of this token no longer exists")
    return JSONResponse(found)
