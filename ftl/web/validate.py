"""Path parameters and headers checked strictly: 4xx, never 500 (bodies and query strings are
decoded into their declared types by ``ftl/web/decode.py``).

Integers in text are ASCII only: ``str.isdigit`` and ``int()`` also accept '²', Arabic-Indic
digits, '_', '+' and spaces.
"""

from __future__ import annotations

from starlette.requests import Request

from ftl.errors import Kind, Refused
from ftl.persistence.trade_scripts import MAX_IDEMPOTENCY_KEY
from ftl.text import ascii_int
from ftl.web.bodies import MAX_ID


def path_id(request: Request, name: str = "id", hi: int = MAX_ID) -> int:
    """A positive ASCII integer path parameter; 404 for anything else (like any unknown path)."""
    value = ascii_int(str(request.path_params.get(name, "")), 1, hi)
    if value is None:
        raise Refused(Kind.NOT_FOUND, "not_found", f"no such {name}")
    return value


def idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key")
    if not key:
        raise Refused(Kind.BAD_REQUEST, "missing_idempotency_key", "the Idempotency-Key header is required")
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise Refused(
            Kind.BAD_REQUEST,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} printable ASCII characters",
        )
    return key
