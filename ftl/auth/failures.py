"""Token failures as refusals (unauthorized) with specific codes, and the unverified header of a
compact JWS."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ftl.errors import Kind, Refused

MAX_TOKEN_CHARS = 8192


def token_error(code: str, message: str) -> Refused:
    """An unauthorized refusal telling the client why its token was refused (the HTTP edge adds
    ``WWW-Authenticate`` per RFC 6750)."""
    return Refused(Kind.UNAUTHORIZED, code, message)


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def unverified_header(token: object) -> dict[str, Any]:
    """The JOSE header of a compact JWS; raises 401 for anything that is not one."""
    if not isinstance(token, str) or not token:
        raise token_error("malformed_token", "the token must be a non-empty string")
    if len(token) > MAX_TOKEN_CHARS:
        raise token_error("token_too_large", f"tokens are at most {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():
        raise token_error("malformed_token", "the token is not a compact JWS (header.payload.signature)")
    try:
        header = json.loads(_b64(parts[0]))
    except (binascii.Error, ValueError, RecursionError):
        raise token_error("malformed_token", "the token header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise token_error("malformed_token", "the token header is not a JSON object")
    return header


def require(header: dict[str, Any], alg: str) -> str:
    """Check ``alg`` and return the ``kid`` of a header."""
    if header.get("alg") != alg:
        raise token_error("unsupported_alg", f"only {alg} tokens are accepted")
    if "crit" in header:
        raise token_error("malformed_token", "critical header parameters are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise token_error("unknown_key", "the token has no usable key id (kid)")
    return kid
