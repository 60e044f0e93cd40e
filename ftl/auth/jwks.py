"""Google's signing keys: cached per Cache-Control max-age, refetched once (shared) on an unknown kid."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from ftl import logs

log = logs.get(__name__)

DEFAULT_MAX_AGE_S = 300.0
MAX_MAX_AGE_S = 86_400.0
MIN_MAX_AGE_S = 1.0
MAX_JWKS_BYTES = 256 * 1024
_MAX_AGE = re.compile(r"(?:^|[,\s])(?:s-)?max-age\s*=\s*\"?(\d{1,10})", re.IGNORECASE)


class JwksUnavailable(Exception):
    """No key set was ever fetched and the endpoint does not answer."""


class JwksCache:
    """One key set per process. Concurrent callers share a single in-flight fetch.

    - Past its max-age the set is refetched; if that fails the last good set keeps serving
      (and the next attempt waits ``retry_s``).
    - An unknown kid triggers at most one refetch per ``unknown_kid_interval_s``: a flood of
      made-up kids costs Google one request, not one per token.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        unknown_kid_interval_s: float = 30.0,
        retry_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.client = client
        self.unknown_kid_interval_s = unknown_kid_interval_s
        self.retry_s = retry_s
        self.clock = clock
        self.keys: dict[str, RSAKey] = {}
        self.fresh_until = -math.inf
        self.fetches = 0
        self._last_unknown = -math.inf
        self._inflight: asyncio.Future[None] | None = None

    async def key(self, kid: str) -> RSAKey | None:
        """The RS256 key ``kid``, or None; raises JwksUnavailable if there never was a key set."""
        if self.clock() >= self.fresh_until:
            await self._refresh()
        if not self.keys:
            raise JwksUnavailable(self.url)
        found = self.keys.get(kid)
        if found is not None:
            return found
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        elif self.clock() - self._last_unknown >= self.unknown_kid_interval_s:
            self._last_unknown = self.clock()
            await self._refresh()
        return self.keys.get(kid)

    async def _refresh(self) -> None:
        task = self._inflight
        if task is None:
            task = asyncio.ensure_future(self._fetch())
            self._inflight = task
            task.add_done_callback(self._done)
        await asyncio.shield(task)

    def _done(self, task: asyncio.Future[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            resp = await self.client.get(self.url, headers={"Accept": "application/json"})
            resp.raise_for_status()
            if len(resp.content) > MAX_JWKS_BYTES:
                raise ValueError(f"key set over {MAX_JWKS_BYTES} bytes")
            keys = parse_key_set(resp.json())
        except Exception as exc:  # any failure: keep serving the last good set
            self.fresh_until = self.clock() + self.retry_s
            log.warning(
                "google jwks fetch failed", url=self.url, error=str(exc) or type(exc).__name__,
                keeping=len(self.keys),
            )  # fmt: skip
            return
        self.keys = keys
        self.fresh_until = self.clock() + max_age(resp.headers.get("cache-control", ""))
        log.info("google jwks fetched", kids=sorted(keys), valid_s=self.fresh_until - self.clock())


def max_age(cache_control: str) -> float:
    """Seconds a response may be cached, from its Cache-Control header."""
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return MIN_MAX_AGE_S
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return DEFAULT_MAX_AGE_S
    return min(max(float(match.group(1)), MIN_MAX_AGE_S), MAX_MAX_AGE_S)


def parse_key_set(data: Any) -> dict[str, RSAKey]:
    """The RS256 signing keys of a JWKS document; raises ValueError if it holds none."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, RSAKey] = {}
    for item in data["keys"]:
        if not isinstance(item, dict):
            continue
        kid, kty, alg, use = item.get("kid"), item.get("kty"), item.get("alg"), item.get("use")
        if not isinstance(kid, str) or kty != "RSA" or alg not in (None, "RS256") or use not in (None, "sig"):
            continue
        public = {"kty": "RSA", "kid": kid, "n": item.get("n"), "e": item.get("e")}
        try:
            keys[kid] = RSAKey.import_key(public)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError):
            log.warning("google jwks: skipping an unusable key", kid=kid)
    if not keys:
        raise ValueError("no usable RS256 keys in the key set")
    return keys
