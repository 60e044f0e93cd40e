"""Our access and refresh JWTs: HS256, kid in the header, a ``typ`` claim keeping the two apart."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError

from ftl.auth.failures import require, token_error, unverified_header
from ftl.auth.keyring import KeyRing
from ftl.auth.principal import FIRST_USER_ID, MAX_NUMERIC_DATE, MAX_USER_ID, Principal
from ftl.text import ascii_int

ISSUER = "ftl"
ALG = "HS256"
CLOCK_SKEW_S = 60
VERIFIED_CACHE = 100_000
Kind = Literal["access", "refresh"]


@dataclass(frozen=True, slots=True)
class OurClaims:
    """The verified claims of one of our tokens."""

    kind: Kind
    user_id: int
    jti: str
    family: str | None
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedRefresh:
    token: str
    jti: uuid.UUID
    family: uuid.UUID
    expires_at: int


class Tokens:
    """Signs with the newest key of the ring; verifies with any key still listed."""

    def __init__(self, ring: KeyRing, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self.ring = ring
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self._verified: dict[str, Principal] = {}

    def _sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": ALG, "kid": self.ring.signing_kid}
        return jwt.encode(header, claims, self.ring.signing_key, algorithms=[ALG])

    def issue_access(self, user_id: int, now: int | None = None) -> str:
        iat = int(time.time()) if now is None else now
        return self._sign(
            {
                "iss": ISSUER,
                "typ": "access",
                "sub": str(user_id),
                "jti": uuid.uuid4().hex,
                "iat": iat,
                "exp": iat + self.access_ttl_s,
            }
        )

    def issue_refresh(self, user_id: int, family: uuid.UUID, now: int | None = None) -> IssuedRefresh:
        iat = int(time.time()) if now is None else now
        jti = uuid.uuid4()
        exp = iat + self.refresh_ttl_s
        token = self._sign(
            {
                "iss": ISSUER,
                "typ": "refresh",
                "sub": str(user_id),
                "jti": str(jti),
                "fam": str(family),
                "iat": iat,
                "exp": exp,
            }
        )
        return IssuedRefresh(token, jti, family, exp)

    def verify(self, token: object, kind: Kind, *, check_exp: bool = True) -> OurClaims:
        """Signature, issuer, kind and times of one of our tokens; 401 Refused otherwise."""
        header = unverified_header(token)
        kid = require(header, ALG)
        key = self.ring.get(kid)
        if key is None:
            raise token_error("unknown_key", "the token was signed by a key we no longer accept")
        assert isinstance(token, str)
        try:
            claims = jwt.decode(token, key, algorithms=[ALG]).claims
        except BadSignatureError:
            raise token_error("bad_signature", "the token signature does not verify") from None
        except (JoseError, ValueError, TypeError):
            raise token_error("malformed_token", "the token could not be decoded") from None
        return _check(claims, kind, check_exp)

    def verify_access(self, token: object) -> Principal:
        """Verify an access token; a verified one is remembered until it expires.

        Every trade carries the same token for minutes: the cache saves the signature check on
        the hot path. It belongs to this key ring, so a ring without the key verifies anew.
        """
        if isinstance(token, str):
            hit = self._verified.get(token)
            if hit is not None and hit.expires_at > time.time():
                return hit
        claims = self.verify(token, "access")
        principal = Principal(claims.user_id, claims.expires_at)
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[str(token)] = principal
        return principal


def _check(claims: dict[str, Any], kind: Kind, check_exp: bool) -> OurClaims:
    if claims.get("iss") != ISSUER:
        raise token_error("wrong_issuer", "the token was not issued by this service")
    typ = claims.get("typ")
    if typ != kind:
        raise token_error("wrong_token_type", f"expected a {kind} token, got {typ!r}")
    jti, fam = claims.get("jti"), claims.get("fam")
    iat, exp, nbf = claims.get("iat"), claims.get("exp"), claims.get("nbf")
    user_id = user_id_of(claims.get("sub"))
    if (
        user_id is None
        or not isinstance(jti, str)
        or not _is_date(iat)
        or not _is_date(exp)
        or (nbf is not None and not _is_date(nbf))
        or (kind == "refresh" and not _is_uuid(fam))
        or (kind == "refresh" and not _is_uuid(jti))
    ):
        raise token_error("invalid_claims", "the token lacks required claims or has malformed ones")
    now = int(time.time())
    if check_exp and exp <= now:
        raise token_error("token_expired", f"the {kind} token has expired")
    if iat > now + CLOCK_SKEW_S:
        raise token_error("token_not_yet_valid", "the token was issued in the future")
    if isinstance(nbf, int) and nbf > now + CLOCK_SKEW_S:
        raise token_error("token_not_yet_valid", "the token is not valid yet (nbf)")
    return OurClaims(kind, user_id, jti, fam if isinstance(fam, str) else None, iat, exp)


def user_id_of(sub: object) -> int | None:
    """The user a ``sub`` claim names: ASCII digits of a user id (never the house account, 0)."""
    return ascii_int(sub, FIRST_USER_ID, MAX_USER_ID) if isinstance(sub, str) else None


def _is_date(value: object) -> TypeGuard[int]:
    """An integer NumericDate between the epoch and the end of year 9999."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_NUMERIC_DATE


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
