"""Load hot Redis state from PostgreSQL rows when Redis does not have it yet."""

from __future__ import annotations

from typing import Any

from ftl import logs
from ftl.persistence.lua_scripts import LuaScripts
from ftl.persistence.stores import Stores
from ftl.persistence.trade_scripts import TradingScripts

log = logs.get(__name__)


async def ensure_wallet(stores: Stores, user_id: int) -> bool:
    """Put ``wallet:{user_id}`` into Redis from its PostgreSQL row; True if it was loaded now."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT w.available, w.locked, w.seq, u.district_id "
            "FROM wallets w JOIN users u ON u.id = w.user_id WHERE w.user_id = %s",
            (user_id,),
        )
        row: tuple[Any, ...] | None = await cur.fetchone()
    if row is None:
        raise LookupError(f"user {user_id} has no wallet row")
    available, locked, seq, district = row
    fields = [
        "available", str(available),
        "locked", str(locked),
        "equity", str(available + locked),
        "seq", str(seq),
        "district", "" if district is None else str(district),
    ]  # fmt: skip
    [loaded] = await LuaScripts(stores.scripts, stores.keys).hash_load(
        [(stores.keys.wallet(user_id), fields)]
    )
    return loaded


async def sync_district(stores: Stores, user_id: int) -> int | None:
    """Give the hot wallet PostgreSQL's ``users.district_id``; returns that district (None: none).

    ``ensure_wallet`` never touches a hash Redis has already, so a user whose first login had no
    district keeps ``district ''`` there after a later login sets one, and every trade with his
    district is ``district_mismatch``. ``wallet_district.lua`` sets the field and moves his entry
    from the old district board (if any) to the new one, in one step; a missing hash is left
    alone (``ensure_wallet`` will load it with the district).
    """
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT district_id FROM users WHERE id = %s", (user_id,))
        row: tuple[Any, ...] | None = await cur.fetchone()
    if row is None:
        raise LookupError(f"user {user_id} does not exist")
    district: int | None = row[0]
    code, old = await LuaScripts(stores.scripts, stores.keys).wallet_district(user_id, district)
    if code == "moved":
        log.info("wallet district synced", user_id=user_id, district=district, was=old or None)
    return district


async def start_used_keys(stores: Stores, user_id: int) -> None:
    """A new user (his wallet row was created just now) holds no idempotency key in PostgreSQL:
    his used-keys set starts empty (``used_keys_load.lua`` with no hashes), so his first trade
    asks PostgreSQL nothing. Skipped while Redis is rebuilt (the first trade loads it)."""
    scripts = TradingScripts(stores.scripts, stores.keys)  # the script's one wrapper
    epoch = await scripts.epoch()
    if epoch is not None:
        await scripts.load_used_keys(user_id, epoch, [])
