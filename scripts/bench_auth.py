"""Benchmark tokens: one fixed key shared by the load generator, the api and the baseline server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import Request

from ftl.auth.keyring import KeyRing
from ftl.auth.tokens import Tokens
from ftl.web.auth_deps import bearer_token

_SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
JWT_KEYS = f"bench:{_SECRET}"


def _tokens() -> Tokens:
    return Tokens(KeyRing.of((("bench", _SECRET),)), access_ttl_s=3600, refresh_ttl_s=7200)


def mint_tokens(user_ids: Iterable[int]) -> dict[int, str]:
    tokens = _tokens()
    return {uid: tokens.issue_access(uid) for uid in user_ids}


def authenticator() -> Callable[[Request], Awaitable[int]]:
    """The same token check the api does, for the baseline server."""
    tokens = _tokens()

    async def authenticate(request: Request) -> int:
        return tokens.verify_access(bearer_token(request)).user_id

    return authenticate
