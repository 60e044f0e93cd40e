"""Load hot Redis state from PostgreSQL rows when Redis does not have it yet."""

from __future__ import annotations

from typing import Any

from ftl.stores import Stores


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
    loaded = await stores.scripts.call("hash_load", [stores.keys.wallet(user_id)], fields)
    return int(loaded) == 1
