"""The auth endpoints: /api/auth/{google,refresh,logout,dev} and GET /api/me."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ftl.auth import users
from ftl.auth.failures import token_error
from ftl.auth.service import AuthService
from ftl.errors import Kind, Refused
from ftl.web import bodies as b
from ftl.web import decode
from ftl.web import replies as out
from ftl.web.auth_deps import current_user
from ftl.web.replies import StructResponse


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
    body = await decode.body(request, b.GoogleLogin, b.MAX_AUTH_BODY)
    session = await service.google_login(body.id_token, body.district_id)
    return StructResponse(out.convert(session, out.Tokens))


async def dev_login(request: Request) -> Response:
    service: AuthService = request.app.state.auth
    if service.stores.settings.production:
        raise Refused(Kind.NOT_FOUND, "not_found", "Not Found")
    service = await _service(request)
    body = await decode.body(request, b.DevLogin, b.MAX_AUTH_BODY)
    session = await service.dev_login(body.email.strip(" ").lower(), body.name, body.district_id)
    return StructResponse(out.convert(session, out.Tokens))


async def refresh(request: Request) -> Response:
    service = await _service(request)
    body = await decode.body(request, b.RefreshToken, b.MAX_AUTH_BODY)
    return StructResponse(out.convert(await service.refresh(body.refresh_token), out.Tokens))


async def logout(request: Request) -> Response:
    service = await _service(request)
    body = await decode.body(request, b.RefreshToken, b.MAX_AUTH_BODY)
    await service.logout(body.refresh_token)
    return Response(status_code=204)


async def me(request: Request) -> Response:
    principal = await current_user(request)
    service: AuthService = request.app.state.auth
    found = await users.profile(service.stores, principal.user_id)
    if found is None:
        raise token_error("unknown_user", "the account of this token no longer exists")
    return StructResponse(out.convert(found, out.Me))
