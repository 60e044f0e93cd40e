"""User accounts: upsert by Google ``sub`` (or by email for dev login) with a funded wallet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ftl.auth.google import GoogleIdentity
from ftl.errors import Kind, Refused
from ftl.persistence.hot import ensure_wallet, start_used_keys, sync_district
from ftl.persistence.stores import Stores


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    name: str
    district_id: int | None


@dataclass(frozen=True, slots=True)
class Wallet:
    available: int
    locked: int
    equity: int


@dataclass(frozen=True, slots=True)
class Profile:
    """A user and his wallet (``GET /api/me``)."""

    id: int
    email: str
    name: str
    district_id: int | None
    wallet: Wallet


async def google_user(stores: Stores, who: GoogleIdentity, district_id: int | None) -> User:
    """Create or update the user Google vouches for; link a dev account with the same email."""
    async with stores.pg.connection() as conn, conn.transaction():
        row = await _try(
            conn,
            "INSERT INTO users (google_sub, email, name, district_id) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (google_sub) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, "
            "district_id = COALESCE(users.district_id, EXCLUDED.district_id) "
            "RETURNING id, email, name, district_id",
            (who.sub, who.email, who.name, district_id),
        )
        if row is None:  # the email belongs to another row: adopt it if it has no Google account yet
            row = await _try(
                conn,
                "UPDATE users SET google_sub = %s, name = %s, "
                "district_id = COALESCE(district_id, %s) "
                "WHERE email = %s AND google_sub IS NULL AND NOT is_house "
                "RETURNING id, email, name, district_id",
                (who.sub, who.name, district_id, who.email),
            )
        if row is None:
            raise Refused(Kind.CONFLICT, "email_in_use", "another account already uses this email address")
        user = User(*row)
        new = await _fund(conn, stores, user.id)
    await _hot_wallet(stores, user.id, district_id, new)
    return user


async def dev_user(stores: Stores, email: str, name: str | None, district_id: int | None) -> User:
    """Create or update a local user by email (dev login only)."""
    async with stores.pg.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO users (email, name, district_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (email) DO UPDATE SET name = COALESCE(%s, users.name), "
            "district_id = COALESCE(users.district_id, EXCLUDED.district_id) "
            "WHERE NOT users.is_house "
            "RETURNING id, email, name, district_id",
            (email, name or "", district_id, name),
        )
        row: tuple[Any, ...] | None = await cur.fetchone()
        if row is None:
            raise Refused(Kind.FORBIDDEN, "forbidden_account", "this account cannot sign in")
        user = User(*row)
        new = await _fund(conn, stores, user.id)
    await _hot_wallet(stores, user.id, district_id, new)
    return user


async def _hot_wallet(stores: Stores, user_id: int, district_id: int | None, new: bool) -> None:
    """After a login: the wallet is hot, with the district PostgreSQL has now.

    A login that names a district sets it if the user had none (COALESCE), but a wallet hash
    loaded by an earlier login keeps its ``district ''``: ``sync_district`` corrects it and the
    district leaderboard. A login without a district cannot change it, so it does not sync (a
    stale read there could undo a concurrent login's district; TradeService re-syncs on a
    district_mismatch). A new user's used-keys set starts empty (his first trade asks
    PostgreSQL nothing).
    """
    if new:
        await start_used_keys(stores, user_id)
    loaded = await ensure_wallet(stores, user_id)
    if district_id is not None and not loaded:
        await sync_district(stores, user_id)


async def _try(
    conn: psycopg.AsyncConnection[Any], sql: str, params: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """One statement in a savepoint: its row, or None if it hit a unique constraint."""
    try:
        async with conn.transaction():
            cur = await conn.execute(sql, params)
            row: tuple[Any, ...] | None = await cur.fetchone()
            return row
    except pg_errors.UniqueViolation:
        return None


async def _fund(conn: psycopg.AsyncConnection[Any], stores: Stores, user_id: int) -> bool:
    """A new user's wallet: the start balance, granted once (a no-op for existing wallets).
    True if the wallet was created now."""
    balance = stores.settings.start_balance
    cur = await conn.execute(
        "INSERT INTO wallets (user_id, available, granted) VALUES (%s, %s, %s) "
        "ON CONFLICT (user_id) DO NOTHING RETURNING 1",
        (user_id, balance, balance),
    )
    return await cur.fetchone() is not None


async def profile(stores: Stores, user_id: int) -> Profile | None:
    """``GET /api/me``: the user and their wallet (Redis when hot, PostgreSQL otherwise)."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT u.id, u.email, u.name, u.district_id, w.available, w.locked "
            "FROM users u LEFT JOIN wallets w ON w.user_id = u.id WHERE u.id = %s AND NOT u.is_house",
            (user_id,),
        )
        row: tuple[Any, ...] | None = await cur.fetchone()
    if row is None:
        return None
    user = User(*row[:4])
    available, locked = row[4] or 0, row[5] or 0
    wallet = Wallet(available, locked, available + locked)
    hot = await stores.redis.hmget(stores.keys.wallet(user_id), ["available", "locked", "equity"])
    try:
        if all(v is not None for v in hot):
            wallet = Wallet(*(int(v or 0) for v in hot))
    except ValueError:
        pass  # not integers: PostgreSQL's copy stands
    return Profile(user.id, user.email, user.name, user.district_id, wallet)


async def get(stores: Stores, user_id: int) -> User | None:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT id, email, name, district_id FROM users WHERE id = %s AND NOT is_house", (user_id,)
        )
        row: tuple[Any, ...] | None = await cur.fetchone()
    return None if row is None else User(*row)
