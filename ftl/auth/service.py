"""The auth service of the api role: logins, refresh rotation, logout, and what they share."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from ftl import logs
from ftl.auth import users
from ftl.auth.failures import token_error
from ftl.auth.google import GoogleVerifier
from ftl.auth.jwks import JwksCache
from ftl.auth.keyring import load_keyring
from ftl.auth.ratelimit import RateLimit
from ftl.auth.refresh import RefreshStore
from ftl.auth.tokens import Tokens
from ftl.persistence.stores import Stores

log = logs.get(__name__)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in session: a short-lived access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds the access token lives."""
    user: users.User
    token_type: str = "Bearer"  # noqa: S105 (the scheme, not a secret)


class AuthService:
    def __init__(
        self,
        stores: Stores,
        tokens: Tokens,
        google: GoogleVerifier,
        limit: RateLimit,
        http: httpx.AsyncClient,
    ) -> None:
        self.stores = stores
        self.tokens = tokens
        self.google = google
        self.limit = limit
        self.http = http
        self.refreshes = RefreshStore(stores.pg)

    @classmethod
    def create(cls, stores: Stores) -> AuthService:
        settings = stores.settings
        tokens = Tokens(load_keyring(settings), settings.access_ttl_s, settings.refresh_ttl_s)
        http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
        google = GoogleVerifier(JwksCache(settings.google_jwks_url, http), settings.google_client_ids)
        return cls(stores, tokens, google, RateLimit(stores.redis, stores.keys, "auth"), http)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def google_login(self, id_token: str, district_id: int | None) -> Session:
        who = await self.google.verify(id_token)
        user = await users.google_user(self.stores, who, district_id)
        log.info("google login", user_id=user.id)
        return await self._session(user)

    async def dev_login(self, email: str, name: str | None, district_id: int | None) -> Session:
        user = await users.dev_user(self.stores, email, name, district_id)
        log.info("dev login", user_id=user.id)
        return await self._session(user)

    async def refresh(self, refresh_token: str) -> Session:
        claims = self.tokens.verify(refresh_token, "refresh")
        successor = await self.refreshes.rotate(claims, lambda uid, fam: self.tokens.issue_refresh(uid, fam))
        user = await users.get(self.stores, claims.user_id)
        if user is None:
            raise token_error("unknown_user", "the account of this token no longer exists")
        return self._reply(user, successor.token)

    async def logout(self, refresh_token: str) -> None:
        # An expired refresh token may still end its session; the signature must hold.
        claims = self.tokens.verify(refresh_token, "refresh", check_exp=False)
        revoked = await self.refreshes.revoke_family_of(claims)
        log.info("logout", user_id=claims.user_id, tokens_revoked=revoked)

    async def _session(self, user: users.User) -> Session:
        issued = self.tokens.issue_refresh(user.id, uuid.uuid4())
        await self.refreshes.record(user.id, issued)
        return self._reply(user, issued.token)

    def _reply(self, user: users.User, refresh_token: str) -> Session:
        return Session(self.tokens.issue_access(user.id), refresh_token, self.tokens.access_ttl_s, user)
