"""Refresh-token families in PostgreSQL: each token works once; a reused one revokes its family."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ftl import logs
from ftl.auth.failures import token_error
from ftl.auth.tokens import IssuedRefresh, OurClaims

log = logs.get(__name__)

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


class RefreshStore:
    def __init__(self, pg: Pool) -> None:
        self.pg = pg

    async def record(self, user_id: int, issued: IssuedRefresh) -> None:
        """Remember a refresh token issued at login (the first of a new family)."""
        async with self.pg.connection() as conn:
            await _insert(conn, user_id, issued)

    async def rotate(
        self, claims: OurClaims, issue: Callable[[int, uuid.UUID], IssuedRefresh]
    ) -> IssuedRefresh:
        """Spend the refresh token ``claims`` and return its successor; 401 Refused if it is spent.

        The conditional UPDATE takes the row lock: of two concurrent rotations one matches, the
        other re-reads ``used_at`` after the first commits and is treated as a reuse.
        """
        assert claims.family is not None
        jti = uuid.UUID(claims.jti)
        async with self.pg.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute(
                    "UPDATE refresh_tokens SET used_at = now() "
                    "WHERE jti = %s AND user_id = %s AND family_id = %s "
                    "AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() "
                    "RETURNING family_id",
                    (jti, claims.user_id, uuid.UUID(claims.family)),
                )
                row: tuple[Any, ...] | None = await cur.fetchone()
                if row is not None:
                    successor = issue(claims.user_id, row[0])
                    await _insert(conn, claims.user_id, successor)
                    await conn.execute(
                        "UPDATE refresh_tokens SET replaced_by = %s WHERE jti = %s", (successor.jti, jti)
                    )
                    return successor
            failure = await self._diagnose(conn, jti, claims)
        raise failure

    async def _diagnose(
        self, conn: psycopg.AsyncConnection[Any], jti: uuid.UUID, claims: OurClaims
    ) -> Exception:
        cur = await conn.execute(
            "SELECT user_id, family_id, used_at IS NOT NULL, revoked_at IS NOT NULL, expires_at <= now() "
            "FROM refresh_tokens WHERE jti = %s",
            (jti,),
        )
        row: tuple[Any, ...] | None = await cur.fetchone()
        if row is None or row[0] != claims.user_id or str(row[1]) != claims.family:
            return token_error("unknown_token", "this refresh token is not known here; sign in again")
        _, family, used, revoked, expired = row
        if revoked:
            return token_error("token_revoked", "this session has ended; sign in again")
        if used:
            revoked_now = await _revoke(conn, family)
            log.warning("refresh token reused; family revoked", user_id=claims.user_id, family=str(family),
                        tokens_revoked=revoked_now)  # fmt: skip
            return token_error("token_reused", "this refresh token was already used; the session is revoked")
        if expired:
            return token_error("token_expired", "the refresh token has expired")
        return token_error("token_reused", "this refresh token was already used")

    async def revoke_family_of(self, claims: OurClaims) -> int:
        """Revoke every token of the family ``claims`` belongs to (logout); how many were live."""
        if claims.family is None:
            return 0
        async with self.pg.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM refresh_tokens WHERE jti = %s AND user_id = %s AND family_id = %s",
                (uuid.UUID(claims.jti), claims.user_id, uuid.UUID(claims.family)),
            )
            if await cur.fetchone() is None:
                return 0
            return await _revoke(conn, uuid.UUID(claims.family))


async def _insert(conn: psycopg.AsyncConnection[Any], user_id: int, issued: IssuedRefresh) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at) "
        "VALUES (%s, %s, %s, to_timestamp(%s))",
        (issued.jti, issued.family, user_id, issued.expires_at),
    )


async def _revoke(conn: psycopg.AsyncConnection[Any], family: uuid.UUID) -> int:
    cur = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %s AND revoked_at IS NULL", (family,)
    )
    return cur.rowcount
