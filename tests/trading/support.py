"""Helpers of the trading tests: put instruments and wallets into Redis, snapshot every key."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from ftl.persistence.keys import Keys
from tests.trading.model import Instrument, Model, Wallet


async def put_instrument(client: aioredis.Redis, keys: Keys, ins: Instrument) -> None:
    fields: dict[str, Any] = {
        "index": ins.index, "index_ts": ins.index_ts, "skew": ins.skew, "depth": ins.depth,
        "cap": ins.cap, "status": ins.status, "long": ins.long, "short": ins.short, "pseq": ins.pseq,
    }  # fmt: skip
    if ins.fee_bps is not None:
        fields["fee_bps"] = ins.fee_bps
    await client.hset(keys.instrument(ins.id), mapping=fields)


async def put_wallet(client: aioredis.Redis, keys: Keys, user: int, w: Wallet) -> None:
    await client.hset(
        keys.wallet(user),
        mapping={
            "available": w.available, "locked": w.locked, "equity": w.equity, "seq": w.seq,
            "district": "" if w.district is None else str(w.district),
        },
    )  # fmt: skip
    await client.sadd(keys.used_keys(user), -1)  # loaded: PostgreSQL holds none of his keys


async def seed(client: aioredis.Redis, keys: Keys, model: Model) -> None:
    """Write the model's instruments and wallets (and an empty house) into Redis."""
    for ins in model.instruments.values():
        await put_instrument(client, keys, ins)
    for user, w in model.wallets.items():
        await put_wallet(client, keys, user, w)
    await client.hset(keys.wallet(0), mapping={"available": model.house.available, "locked": 0})
    await client.set(keys.boot_marker, "1")  # Redis holds a complete hot state


async def snapshot(client: aioredis.Redis, keys: Keys) -> dict[bytes, bytes | None]:
    """DUMP of every key under the test prefix (byte-identical comparison)."""
    names = sorted([k async for k in client.scan_iter(match=f"{keys.prefix}*", count=1000)])
    if not names:
        return {}
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.dump(name)
    dumps = await pipe.execute()
    return dict(zip(names, dumps, strict=True))


def decode(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}
