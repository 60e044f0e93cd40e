"""The authentication dependency of every non-auth /api route, and the token check ws reuses."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from ftl.auth.failures import MAX_TOKEN_CHARS, token_error
from ftl.auth.principal import Principal
from ftl.auth.tokens import Tokens


def bearer_token(conn: HTTPConnection) -> str:
    """The token of an ``Authorization: Bearer`` header; 401 ``missing_token`` without one."""
    header = conn.headers.get("authorization")
    if not header:
        raise token_error("missing_token", "send Authorization: Bearer <access token>")
    if len(header) > MAX_TOKEN_CHARS + 16:
        raise token_error("token_too_large", f"tokens are at most {MAX_TOKEN_CHARS} characters")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise token_error("malformed_token", "expected Authorization: Bearer <access token>")
    return token.strip()


def verify_access_token(tokens: Tokens, token: object) -> Principal:
    """The principal of an access token (for the ws role: upgrade header or ``auth`` message).

    Raises ``Refused`` (status 401) whose ``code`` names the reason.
    """
    return tokens.verify_access(token)


def tokens_of(conn: HTTPConnection) -> Tokens:
    tokens = getattr(conn.app.state, "tokens", None)
    if not isinstance(tokens, Tokens):
        raise RuntimeError("app.state.tokens is not set: mount auth on this app first")
    return tokens


async def current_user(conn: HTTPConnection) -> Principal:
    """The caller of a request or WebSocket upgrade, from its Bearer access token; 401 otherwise."""
    return verify_access_token(tokens_of(conn), bearer_token(conn))
