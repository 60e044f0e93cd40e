"""API errors: ``{"error": {"code": ..., "message": ...}}`` with a fitting status, never a bare 500."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import psycopg_pool
import redis.exceptions
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ftl import logs

log = logs.get(__name__)


class ApiError(Exception):
    """An error a client can act on: HTTP status, machine-readable code, human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


class ErrorJSON(JSONResponse):
    """JSON escaped to ASCII: an error may echo client text (a field name) holding a lone
    surrogate, which ``JSONResponse``'s UTF-8 encoding would turn into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if extra:
        body.update(extra)
    return ErrorJSON({"error": body}, status_code=status, headers=headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.extra)


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
    ApiError: api_error_handler,
    ClientDisconnect: client_gone_handler,
    psycopg.OperationalError: database_down_handler,
    psycopg_pool.PoolTimeout: database_down_handler,
    redis.exceptions.ConnectionError: redis_down_handler,
    redis.exceptions.TimeoutError: redis_down_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
