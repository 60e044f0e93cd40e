"""Google ID token verification: RS256 against Google's JWKS, iss, aud, exp/iat, email_verified."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError

from ftl.auth.failures import require, token_error, unverified_header
from ftl.auth.jwks import JwksCache, JwksUnavailable
from ftl.errors import Kind, Refused

ISSUERS = ("accounts.google.com", "https://accounts.google.com")
ALG = "RS256"
LEEWAY_S = 60


@dataclass(frozen=True, slots=True)
class GoogleIdentity:
    """Who Google says signed in."""

    sub: str
    email: str
    name: str


class GoogleVerifier:
    def __init__(
        self,
        jwks: JwksCache,
        client_ids: tuple[str, ...],
        *,
        leeway_s: int = LEEWAY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jwks = jwks
        self.client_ids = client_ids
        self.leeway_s = leeway_s
        self.clock = clock

    async def verify(self, token: object) -> GoogleIdentity:
        """The identity in a Google ID token; 401 Refused with a specific code otherwise."""
        header = unverified_header(token)
        kid = require(header, ALG)
        if not self.client_ids:
            raise Refused(Kind.UNAVAILABLE, "google_not_configured", "Google sign-in is not configured here")
        try:
            key = await self.jwks.key(kid)
        except JwksUnavailable:
            raise Refused(
                Kind.UNAVAILABLE,
                "google_unavailable",
                "Google's signing keys cannot be fetched; try again later",
                retry_after_s=10,
            ) from None
        if key is None:
            raise token_error("unknown_key", "the token was signed by a key Google does not list")
        assert isinstance(token, str)
        try:
            claims = jwt.decode(token, key, algorithms=[ALG]).claims
        except BadSignatureError:
            raise token_error("bad_signature", "the token signature does not verify") from None
        except (JoseError, ValueError, TypeError):
            raise token_error("malformed_token", "the token could not be decoded") from None
        return self.check(claims)

    def check(self, claims: dict[str, Any]) -> GoogleIdentity:
        if claims.get("iss") not in ISSUERS:
            raise token_error("wrong_issuer", "the token was not issued by Google")
        aud = claims.get("aud")
        if isinstance(aud, list):
            # Several audiences: the authorized party must be us (OpenID Connect Core 3.1.3.7).
            if claims.get("azp") not in self.client_ids or not set(self.client_ids) & set(aud):
                raise token_error("wrong_audience", "the token is meant for another application")
        elif aud not in self.client_ids:
            raise token_error("wrong_audience", "the token is meant for another application")
        now = self.clock()
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _number(exp) or not _number(iat) or (nbf is not None and not _number(nbf)):
            raise token_error("invalid_claims", "exp and iat must be numeric dates")
        if exp + self.leeway_s <= now:
            raise token_error("token_expired", "the Google ID token has expired")
        if iat - self.leeway_s > now or (nbf is not None and nbf - self.leeway_s > now):
            raise token_error("token_not_yet_valid", "the Google ID token was issued in the future")
        verified = claims.get("email_verified")
        if verified is not True and verified != "true":
            raise token_error("email_not_verified", "the Google account's email address is not verified")
        sub, email, name = claims.get("sub"), claims.get("email"), claims.get("name", "")
        if not isinstance(sub, str) or not 1 <= len(sub) <= 255:
            raise token_error("invalid_claims", "the token has no subject")
        if not isinstance(email, str) or "@" not in email or not 3 <= len(email) <= 320:
            raise token_error("invalid_claims", "the token has no usable email")
        return GoogleIdentity(sub, email.lower(), name[:200] if isinstance(name, str) else "")


def _number(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
