"""Each rating change moves the index in Redis, publishes on price:{id} and becomes a tick row."""

from __future__ import annotations

import time

import msgpack

from ftl.persistence.stores import Stores
from ftl.pricing.model import IndexChange
from ftl.pricing.runner import PriceFeed
from tests.helpers import await_for
from tests.persistence.support import make_instrument


async def test_a_change_moves_the_index_publishes_and_records_a_tick(stores: Stores) -> None:
    iid = await make_instrument(stores, index=1000)
    now = int(time.time() * 1000) + 1000
    feed = PriceFeed(stores)
    pubsub = stores.redis.pubsub()
    await pubsub.subscribe(stores.keys.price_channel(iid))
    try:
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        change = IndexChange(instrument_id=iid, player_id=iid, index_cents=1050, rating=7.1, ts_ms=now)
        await feed.apply([change])
        got: list[dict[str, object]] = []

        async def published() -> bool:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is not None:
                got.append(msgpack.unpackb(msg["data"]))
            return bool(got)

        await await_for(published, 5, "a PRICE_UPDATE")
        assert got[0]["type"] == "PRICE_UPDATE" and got[0]["id"] == iid
        assert got[0]["price"] == 1050 and got[0]["index"] == 1050
        assert int(await stores.redis.hget(stores.keys.instrument(iid), "index") or 0) == 1050
        assert await feed.writer.flush() == 1
        async with stores.pg.connection() as conn:
            cur = await conn.execute(
                "SELECT index_price, rating FROM price_ticks WHERE instrument_id = %s", (iid,)
            )
            rows = await cur.fetchall()
        assert [(r[0], float(r[1])) for r in rows] == [(1050, 7.1)]

        # a halt only: status changes, no tick, the price stays
        halt = IndexChange(
            instrument_id=iid,
            player_id=iid,
            index_cents=1050,
            rating=7.1,
            ts_ms=now + 1000,
            halt_until_ms=now + 9000,
            repriced=False,
        )
        await feed.apply([halt])
        assert await stores.redis.hget(stores.keys.instrument(iid), "status") == b"halted"
        assert await feed.writer.flush() == 0

        # the halt runs out in the same poll as a new rating: one repriced change lifts it
        after = IndexChange(
            instrument_id=iid, player_id=iid, index_cents=1060, rating=7.2, ts_ms=now + 10_000
        )
        await feed.apply([after])
        assert await stores.redis.hget(stores.keys.instrument(iid), "status") == b"open"
        assert int(await stores.redis.hget(stores.keys.instrument(iid), "index") or 0) == 1060
    finally:
        await pubsub.aclose()
        if feed.feed is not None:
            await feed.feed.aclose()
