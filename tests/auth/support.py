"""Helpers of the auth tests."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
from joserfc import jwt

from ftl.auth.tokens import Tokens


def unique_email() -> str:
    return f"user-{secrets.token_hex(6)}@example.com"


async def dev_login(api: httpx.AsyncClient, email: str | None = None, **extra: Any) -> dict[str, Any]:
    resp = await api.post("/api/auth/dev", json={"email": email or unique_email(), **extra})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def error_code(resp: httpx.Response) -> str:
    code: str = resp.json()["error"]["code"]
    return code


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed(tokens: Tokens, **claims: Any) -> str:
    """An access token with our key and these claims over sane defaults (None drops a claim)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "ftl",
        "typ": "access",
        "sub": "5",
        "jti": "j",
        "iat": now,
        "exp": now + 60,
    }
    base.update(claims)
    body = {k: val for k, val in base.items() if val is not None}
    header = {"alg": "HS256", "kid": tokens.ring.signing_kid}
    return jwt.encode(header, body, tokens.ring.signing_key, algorithms=["HS256"])
