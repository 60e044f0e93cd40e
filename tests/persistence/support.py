"""Test data in PostgreSQL and Redis: traders with wallets, instruments with hot state."""

from __future__ import annotations

import secrets

from ftl.persistence.hot import ensure_wallet
from ftl.persistence.ledger import new_epoch, used_keys
from ftl.persistence.stores import Stores
from ftl.persistence.trade_scripts import TradingConfig, TradingScripts
from ftl.trading.seed import InstrumentSeed, seed


async def make_trader(stores: Stores, balance: int = 1_000_000, district: int | None = None) -> int:
    async with stores.pg.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO users (email, name, district_id) VALUES (%s, 't', %s) RETURNING id",
            (f"{secrets.token_hex(6)}@x.test", district),
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(
            "INSERT INTO wallets (user_id, available, granted) VALUES (%s, %s, %s)",
            (row[0], balance, balance),
        )
    await ensure_wallet(stores, row[0])
    await stores.redis.sadd(stores.keys.used_keys(row[0]), -1)  # loaded: a new user has no keys
    return int(row[0])


async def make_instrument(stores: Stores, index: int = 1000) -> int:
    iid = secrets.randbelow(10**9) + 10**6
    await seed(stores, [InstrumentSeed(iid, iid, "P", "T", "FW", index)])
    await start_counters(stores)
    if not await stores.redis.exists(stores.keys.boot_marker):
        await start_epoch(stores)
    return iid


async def start_epoch(stores: Stores) -> int:
    """A new Redis incarnation, as the rebuild starts one: PostgreSQL accepts its writes only."""
    async with stores.pg.connection() as conn:
        epoch = await new_epoch(conn, stores.keys.prefix)
    await stores.redis.set(stores.keys.boot_marker, str(epoch))
    return epoch


async def start_counters(stores: Stores) -> None:
    """Ids continue after PostgreSQL's (the test database outlives each test's Redis prefix)."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM trades), "
            "(SELECT coalesce(max(id), 0) FROM cfd_positions)"
        )
        row = await cur.fetchone()
    assert row is not None
    await stores.redis.hset(stores.keys.seq, mapping={"trade": row[0], "position": row[1]})


async def load_used_keys(stores: Stores, *user_ids: int) -> None:
    """What the api does on ``no_used_keys``: the users' keys from PostgreSQL into their sets
    (for tests that call the trade scripts directly)."""
    epoch = await stores.redis.get(stores.keys.boot_marker)
    assert epoch is not None
    async with stores.pg.connection() as conn:
        found = await used_keys(conn, user_ids)
    for user_id in user_ids:
        assert await trading(stores).load_used_keys(user_id, epoch.decode(), found[user_id]) is not None


def trading(stores: Stores) -> TradingScripts:
    return TradingScripts(stores.scripts, stores.keys, TradingConfig(fee_bps=10))


async def wipe_redis(stores: Stores) -> None:
    """Redis lost everything under this test's prefix (a crash without persistence)."""
    found = [k async for k in stores.redis.scan_iter(match=f"{stores.keys.prefix}*", count=1000)]
    if found:
        await stores.redis.delete(*found)
