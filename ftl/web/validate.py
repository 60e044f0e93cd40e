"""Strict request parsing: exact JSON types, no unknown fields, bounded sizes; 4xx, never 500."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from starlette.requests import Request

from ftl.web.errors import ApiError

MAX_BODY = 16 * 1024
MAX_INT = 2**53 - 1


def invalid(field: str, message: str, code: str = "invalid_field") -> ApiError:
    return ApiError(422, code, f"{field}: {message}", extra={"field": field})


async def json_object(
    request: Request,
    allowed: Collection[str],
    required: Collection[str] = (),
    max_body: int = MAX_BODY,
) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys and every ``required`` one."""
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype.lower():
        raise ApiError(415, "unsupported_media_type", "send application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise ApiError(413, "body_too_large", f"request body over {max_body} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise ApiError(413, "body_too_large", f"request body over {max_body} bytes")
    try:
        body = json.loads(raw, parse_constant=_no_constant) if raw else None
    except (ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            422, "unknown_field", f"unknown field(s): {', '.join(unknown)}", extra={"field": unknown[0]}
        )
    missing = [name for name in required if name not in body]
    if missing:
        raise ApiError(
            422, "missing_field", f"missing field(s): {', '.join(missing)}", extra={"field": missing[0]}
        )
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def integer(body: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    """A JSON integer (not a float, bool or string) within ``lo..hi``."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, "must be an integer")
    if not lo <= value <= hi:
        raise invalid(name, f"must be between {lo} and {hi}", "out_of_range")
    return value


def optional_integer(body: Mapping[str, Any], name: str, lo: int, hi: int) -> int | None:
    if body.get(name) is None:
        return None
    return integer(body, name, lo, hi)


def choice(body: Mapping[str, Any], name: str, options: Collection[str]) -> str:
    value = body.get(name)
    if not isinstance(value, str) or value not in options:
        raise invalid(name, f"must be one of {', '.join(sorted(options))}")
    return value


def query_int(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit() or len(raw) > 20:
        raise invalid(name, "must be an integer")
    value = int(raw)
    if not lo <= value <= hi:
        raise invalid(name, f"must be between {lo} and {hi}", "out_of_range")
    return value


def path_id(request: Request, name: str = "id") -> int:
    raw = str(request.path_params.get(name, ""))
    if not raw.isdigit() or len(raw) > 16 or int(raw) < 1:
        raise ApiError(404, "not_found", f"no such {name}")
    return int(raw)


def idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key")
    if not key:
        raise ApiError(400, "missing_idempotency_key", "the Idempotency-Key header is required")
    if len(key) > 200 or not key.isascii() or not key.isprintable():
        raise ApiError(
            400, "invalid_idempotency_key", "Idempotency-Key must be 1..200 printable ASCII characters"
        )
    return key
