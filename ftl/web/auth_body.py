"""Strict JSON bodies of the auth endpoints: an object, known fields, exact types, bounded size."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from starlette.requests import Request

from ftl.errors import Kind, Refused
from ftl.web.validate import json_object, text

# Room for an oversized token to reach the token check (and its specific 401), not much more.
MAX_BODY = 128 * 1024
MAX_INT = 2**31 - 1
MAX_EMAIL = 320
EMAIL_PATTERN = "^ *[^@\\x00-\\x20\\x7f]+@[^@\\x00-\\x20\\x7f]+ *$"
"""An email address as the dev login takes it: one '@' with no space or control character on
either side (spaces around it are dropped). The same pattern is the OpenAPI document's, so the two
cannot disagree (Python's re and ECMA regexes read it alike)."""
_EMAIL = re.compile(EMAIL_PATTERN)


def invalid(field: str, message: str) -> Refused:
    return Refused(Kind.INVALID, "invalid_field", f"{field}: {message}", extra={"field": field})


async def read_object(
    request: Request, allowed: Collection[str], required: Collection[str]
) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys and every ``required`` one."""
    return await json_object(request, allowed, required, max_body=MAX_BODY)


def token_field(body: dict[str, Any], name: str) -> str:
    """A token-bearing string field; its content is judged by the token check (401), not here."""
    value = body.get(name)
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    return value


def optional_str(body: dict[str, Any], name: str, max_len: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    return text(name, value, max_len)  # 422 also for NUL or a lone surrogate (not storable)


def district(body: dict[str, Any]) -> int | None:
    value = body.get("district_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("district_id", "must be an integer")
    if not 1 <= value <= MAX_INT:
        raise Refused(
            Kind.INVALID,
            "out_of_range",
            f"district_id: must be between 1 and {MAX_INT}",
            extra={"field": "district_id"},
        )
    return value


def email(body: dict[str, Any]) -> str:
    value = body.get("email")
    if not isinstance(value, str):
        raise invalid("email", "must be a string")
    value = text("email", value, MAX_EMAIL)
    if _EMAIL.fullmatch(value) is None:
        raise invalid("email", "must be an email address")
    return value.strip(" ").lower()
