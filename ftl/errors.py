"""Refusals: what domain code raises when it will not do what was asked (the edges map them)."""

from __future__ import annotations

import enum
from typing import Any


class Kind(enum.Enum):
    """Why a request is refused. Each edge maps kinds to its protocol once (``ftl/web/errors.py``:
    an HTTP status); domain code never names a status."""

    BAD_REQUEST = "bad_request"  # the request is malformed (a missing header, say)
    UNAUTHORIZED = "unauthorized"  # no valid credentials
    FORBIDDEN = "forbidden"  # valid credentials, not allowed
    NOT_FOUND = "not_found"  # no such thing (or not the caller's)
    CONFLICT = "conflict"  # the state of things refuses it now (halted, slippage, key reused)
    TOO_LARGE = "too_large"  # over a size limit
    UNSUPPORTED = "unsupported"  # a media type the api does not read
    INVALID = "invalid"  # a field's value is wrong
    RATE_LIMITED = "rate_limited"  # too many requests: retry later
    UNAVAILABLE = "unavailable"  # a store or a dependency does not answer: retry later


class Refused(Exception):
    """A request refused, with what a client can act on: its kind, a machine-readable code, a
    human message, optionally seconds to wait before a retry and extra fields for the reply
    (``field`` of a 422, ``trade_id`` of a 503)."""

    def __init__(
        self,
        kind: Kind,
        code: str,
        message: str,
        *,
        retry_after_s: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.extra = extra or {}
