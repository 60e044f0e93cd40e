"""Concurrent opens on one wallet over a connection pool: exactly the affordable ones succeed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from ftl.persistence.keys import Keys
from ftl.persistence.scripts import Scripts
from ftl.persistence.trade_replies import OpenResult, Rejected
from ftl.persistence.trade_scripts import TradingConfig, TradingScripts
from ftl.trading import amm
from tests.trading.conftest import NOW
from tests.trading.model import Instrument, Wallet
from tests.trading.support import put_instrument, put_wallet

CALLS = 200
AFFORDABLE = 73
COST = 102  # qty 1 at an index of 1.00 and a deep book: notional 101 (ceiled), fee 1, leverage 1


@pytest.fixture
async def pooled(redis_url: str, keys: Keys, anyio_backend: str) -> AsyncIterator[TradingScripts]:
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=32, timeout=30)
    client = aioredis.Redis(connection_pool=pool)
    scripts = Scripts(client)
    await scripts.load_all()
    await put_instrument(client, keys, Instrument(id=1, index=100, depth=100_000, cap=99_999, index_ts=NOW))
    await put_wallet(client, keys, 1, Wallet(available=AFFORDABLE * COST + COST // 2))
    await client.set(keys.boot_marker, "1")
    try:
        yield TradingScripts(scripts, keys, TradingConfig(fee_bps=10), clock=lambda: NOW)
    finally:
        found = [k async for k in client.scan_iter(match=f"{keys.prefix}*", count=1000)]
        if found:
            await client.delete(*found)
        await client.aclose()
        await pool.disconnect()


async def open_one(trading: TradingScripts, key: str) -> OpenResult | Rejected:
    return await trading.open(
        user_id=1, instrument_id=1, side="long", qty=1, leverage=1, acceptable_price=101, idempotency_key=key
    )


async def test_concurrent_opens_never_overspend(pooled: TradingScripts) -> None:
    for s in (0, CALLS):  # the cost is the same at every skew this test reaches
        assert amm.quote(100, s, 100_000, "long", 1, 1, 10).cost == COST
    results = await asyncio.gather(*(open_one(pooled, f"k{i}") for i in range(CALLS)))
    accepted = [r for r in results if isinstance(r, OpenResult)]
    rejected = [r for r in results if isinstance(r, Rejected)]
    assert len(accepted) == AFFORDABLE
    assert rejected == [Rejected("insufficient_funds")] * (CALLS - AFFORDABLE)
    assert all(r.available >= 0 for r in accepted)
    assert sorted(r.trade_id for r in accepted) == list(range(1, AFFORDABLE + 1))
    client, keys = pooled.scripts.client, pooled.keys
    wallet = await client.hgetall(keys.wallet(1))
    assert int(wallet[b"available"]) == COST // 2
    assert int(wallet[b"locked"]) == AFFORDABLE * 101
    assert int((await client.hgetall(keys.wallet(0)))[b"available"]) == AFFORDABLE
    assert int((await client.hgetall(keys.instrument(1)))[b"skew"]) == AFFORDABLE
    assert await client.xlen(keys.outbox) == AFFORDABLE


async def test_concurrent_duplicates_make_one_trade(pooled: TradingScripts) -> None:
    results = await asyncio.gather(*(open_one(pooled, "same") for _ in range(50)))
    assert all(isinstance(r, OpenResult) for r in results)
    fresh = [r for r in results if isinstance(r, OpenResult) and not r.replay]
    assert len(fresh) == 1
    assert {r.trade_id for r in results if isinstance(r, OpenResult)} == {1}
    assert await pooled.scripts.client.xlen(pooled.keys.outbox) == 1
