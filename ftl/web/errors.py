"""API errors: ``{"error": {"code": ..., "message": ...}}`` with a fitting status, never a bare 500.

The one place that maps the domain's refusals (:class:`ftl.errors.Refused`) to HTTP statuses.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import psycopg
import psycopg_pool
import redis.exceptions
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ftl import logs
from ftl.errors import Kind, Refused
from ftl.web.replies import Error, ErrorDetail

log = logs.get(__name__)


STATUS: dict[Kind, int] = {
    Kind.BAD_REQUEST: 400,
    Kind.UNAUTHORIZED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.CONFLICT: 409,
    Kind.TOO_LARGE: 413,
    Kind.UNSUPPORTED: 415,
    Kind.INVALID: 422,
    Kind.RATE_LIMITED: 429,
    Kind.UNAVAILABLE: 503,
}


def _headers(exc: Refused) -> dict[str, str]:
    headers: dict[str, str] = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.kind is Kind.UNAUTHORIZED:  # RFC 6750: say why a bearer token was refused
        error = "invalid_request" if exc.code in ("missing_token", "malformed_token") else "invalid_token"
        headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return headers


class ErrorJSON(Response):
    """The declared error body (:class:`ftl.web.replies.Error`) as JSON escaped to ASCII: an error
    may echo client text (a field name) holding a lone surrogate, which UTF-8 cannot encode."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        plain = msgspec.to_builtins(content)
        return json.dumps(plain, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    extra = extra or {}
    detail = ErrorDetail(code, message, field=extra.get("field"), trade_id=extra.get("trade_id"))
    return ErrorJSON(Error(detail), status_code=status, headers=headers)


async def refused_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return error_response(STATUS[exc.kind], exc.code, exc.message, _headers(exc), exc.extra)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", path=request.url.path)
    return error_response(500, "internal", "internal error; it has been logged")


async def client_gone_handler(request: Request, exc: Exception) -> Response:
    """The client hung up before its body arrived: nothing to answer and nothing wrong here, so
    one info line, not an error traceback (anyone could flood the error log with them)."""
    log.info("client disconnected mid-request", path=request.url.path)
    return error_response(400, "client_disconnected", "the request body did not arrive")


async def database_down_handler(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable", path=request.url.path, error=repr(exc))
    return error_response(
        503, "database_unavailable", "the database does not answer; retry soon", {"Retry-After": "1"}
    )


async def redis_down_handler(request: Request, exc: Exception) -> Response:
    log.warning("redis unavailable", path=request.url.path, error=repr(exc))
    return error_response(
        503, "cache_unavailable", "the trading engine does not answer; retry soon", {"Retry-After": "1"}
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    Refused: refused_handler,
    ClientDisconnect: client_gone_handler,
    psycopg.OperationalError: database_down_handler,
    psycopg_pool.PoolTimeout: database_down_handler,
    redis.exceptions.ConnectionError: redis_down_handler,
    redis.exceptions.TimeoutError: redis_down_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
