"""Helpers of the auth tests."""

from __future__ import annotations

import secrets
from typing import Any

import httpx


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
