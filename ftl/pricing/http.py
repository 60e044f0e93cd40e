"""The Sportmonks v3 HTTP plumbing shared by the livescores and the squads clients: one httpx
client per token (in the ``Authorization`` header only), and one GET that maps every failure to a
feed error (``ftl/pricing/errors.py``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from ftl import logs
from ftl.pricing.errors import (
    ClientError,
    FeedTimeout,
    MalformedResponse,
    RateLimited,
    ServerError,
    Unauthorized,
)

log = logs.get(__name__)

DEFAULT_429_WAIT_S = 60.0


def client(
    base_url: str, token: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An httpx client for ``base_url`` sending ``token`` in the Authorization header (never in
    the query string, so it is never in an access log)."""
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers={"Authorization": token, "Accept": "application/json"},
        timeout=httpx.Timeout(timeout_s),
        transport=transport,
        follow_redirects=False,
    )


async def get_json(http: httpx.AsyncClient, path: str, params: Mapping[str, str]) -> Any:
    """GET ``path`` and decode its JSON; a feed error for a timeout, 429, 401/403, 5xx, any other
    status but 200, or a body that is not JSON."""
    try:
        resp = await http.get(path, params=dict(params))
    except httpx.TimeoutException as exc:
        raise FeedTimeout(f"timed out: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise FeedTimeout(f"transport error: {type(exc).__name__}") from exc
    status = resp.status_code
    if status == 429:
        raise RateLimited(reset_seconds(resp))
    if status in (401, 403):
        raise Unauthorized(status)
    if status >= 500:
        raise ServerError(status)
    if status != 200:
        raise ClientError(status)
    try:
        return json.loads(resp.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"{path}: response is not JSON: {exc}") from exc


def reset_seconds(resp: httpx.Response) -> float:
    """Seconds to wait after a 429: ``rate_limit.resets_in_seconds``, else Retry-After, else 60."""
    try:
        value = json.loads(resp.content)["rate_limit"]["resets_in_seconds"]
        if type(value) in (int, float) and value >= 0:
            return float(value)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        pass
    retry_after = resp.headers.get("Retry-After", "")
    if retry_after.isdigit():
        return float(retry_after)
    log.warning("429 without rate_limit nor Retry-After", default_s=DEFAULT_429_WAIT_S)
    return DEFAULT_429_WAIT_S
