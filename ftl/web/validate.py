"""Strict request parsing: exact JSON types, no unknown fields, bounded sizes; 4xx, never 500.

Integers in text (query and path parameters, headers, JWT claims) are ASCII only: ``str.isdigit``
and ``int()`` also accept '²', Arabic-Indic digits, '_', '+' and spaces. Text must not hold NUL
(PostgreSQL refuses it) or lone surrogates (they cannot be encoded as UTF-8).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request

from ftl.errors import Kind, Refused
from ftl.text import ascii_int, is_ascii_int, text_problem

MAX_BODY = 16 * 1024
MAX_INT = 2**53 - 1
MAX_MS = (
    datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
) // timedelta(milliseconds=1)
"""The last millisecond of year 9999 in epoch ms: the latest timestamp a Python date can hold."""
JSON_TYPES = ("application/json",)
JSON_PARAMS = ("", "charset=utf-8")


def invalid(field: str, message: str, code: str = "invalid_field") -> Refused:
    return Refused(Kind.INVALID, code, f"{field}: {message}", extra={"field": field})


# --- integers and text in strings ------------------------------------------------------


def text(name: str, value: str, max_len: int) -> str:
    """``value`` of field ``name`` if it is storable text of at most ``max_len`` characters; 422 otherwise."""
    if len(value) > max_len:
        raise invalid(name, f"must be at most {max_len} characters")
    problem = text_problem(value)
    if problem is not None:
        raise invalid(name, problem)
    return value


# --- JSON bodies -----------------------------------------------------------------------


def is_json_media_type(ctype: str) -> bool:
    """``application/json``, optionally ``; charset=utf-8`` (both case-insensitive)."""
    media, _, params = ctype.partition(";")
    if media.strip().lower() not in JSON_TYPES:
        return False
    return params.replace(" ", "").replace("\t", "").lower() in JSON_PARAMS


async def json_object(
    request: Request,
    allowed: Collection[str],
    required: Collection[str] = (),
    max_body: int = MAX_BODY,
) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys and every ``required`` one."""
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise Refused(Kind.UNSUPPORTED, "unsupported_media_type", "send Content-Type: application/json")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and ascii_int(declared, 0, max_body) is None:
        raise Refused(Kind.TOO_LARGE, "body_too_large", f"request body over {max_body} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise Refused(Kind.TOO_LARGE, "body_too_large", f"request body over {max_body} bytes")
    try:
        body = json.loads(raw, parse_constant=_no_constant, object_pairs_hook=_unique_keys) if raw else None
    except (ValueError, RecursionError):
        raise Refused(Kind.BAD_REQUEST, "malformed_json", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refused(Kind.BAD_REQUEST, "malformed_json", "request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise Refused(
            Kind.INVALID,
            "unknown_field",
            f"unknown field(s): {', '.join(unknown)}",
            extra={"field": unknown[0]},
        )
    missing = [name for name in required if name not in body]
    if missing:
        raise Refused(
            Kind.INVALID,
            "missing_field",
            f"missing field(s): {', '.join(missing)}",
            extra={"field": missing[0]},
        )
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (``json`` would silently keep the last one)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Refused(
                Kind.INVALID,
                "duplicate_key",
                f"{key}: given more than once in a JSON object",
                extra={"field": key},
            )
        out[key] = value
    return out


def integer(body: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    """A JSON integer within ``lo..hi``: a number with no fractional part (``5`` or ``5.0``, which
    JSON and JSON Schema hold to be the same number), not a bool, a string or ``5.5``."""
    value = body.get(name)
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT:
        value = int(value)  # exact: integral and within 2^53
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


# --- query, path and headers -----------------------------------------------------------


def query_int(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    """An integer query parameter within ``lo..hi``, ``default`` when absent; 422 when present but
    not an ASCII integer (an empty value included) or out of range."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not is_ascii_int(raw):
        raise invalid(name, "must be an integer")
    value = ascii_int(raw, lo, hi)
    if value is None:
        raise invalid(name, f"must be between {lo} and {hi}", "out_of_range")
    return value


def query_text(request: Request, name: str, max_len: int) -> str | None:
    """A text query parameter (None when absent or empty); 422 if too long, NUL or not Unicode."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    return text(name, raw, max_len)


def path_id(request: Request, name: str = "id", hi: int = MAX_INT) -> int:
    """A positive ASCII integer path parameter; 404 for anything else (like any unknown path)."""
    value = ascii_int(str(request.path_params.get(name, "")), 1, hi)
    if value is None:
        raise Refused(Kind.NOT_FOUND, "not_found", f"no such {name}")
    return value


def idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key")
    if not key:
        raise Refused(Kind.BAD_REQUEST, "missing_idempotency_key", "the Idempotency-Key header is required")
    if len(key) > 200 or not key.isascii() or not key.isprintable():
        raise Refused(
            Kind.BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1..200 printable ASCII characters",
        )
    return key
