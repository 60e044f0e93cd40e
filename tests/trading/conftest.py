"""Fixtures of the trading tests: a seeded world in Redis and its reference model side by side."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from ftl.persistence.keys import Keys
from ftl.persistence.scripts import Scripts
from ftl.persistence.trade_scripts import TradingConfig, TradingScripts
from tests.trading.model import Config, Instrument, Model, Wallet
from tests.trading.support import seed, snapshot

NOW = 1_780_000_000_000  # ms, June 2026
FEE_BPS = 10
MAX_AGE_MS = 60_000
MM_BPS = 500


@dataclass
class World:
    client: aioredis.Redis
    keys: Keys
    trading: TradingScripts
    model: Model

    async def snapshot(self) -> dict[bytes, bytes | None]:
        return await snapshot(self.client, self.keys)


def make_model() -> Model:
    model = Model(config=Config(fee_bps=FEE_BPS, max_index_age_ms=MAX_AGE_MS, mm_bps=MM_BPS))
    model.instruments[1] = Instrument(id=1, index=1000, depth=10_000, cap=5_000, index_ts=NOW)
    model.instruments[2] = Instrument(id=2, index=2500, depth=20_000, cap=2_000, index_ts=NOW, fee_bps=30)
    model.wallets[1] = Wallet(available=1_000_000)
    model.wallets[2] = Wallet(available=500_000, district=7)
    return model


@pytest.fixture
async def world(redis_client: aioredis.Redis, keys: Keys, scripts: Scripts, anyio_backend: str) -> World:
    # anyio_backend named here: else anyio's collection hook rebuilds the test items of async tests
    # and drops their @pytest.mark.parametrize arguments.
    model = make_model()
    await seed(redis_client, keys, model)
    await redis_client.sadd(keys.used_keys(3), -1)  # user 3: keys loaded, but no wallet
    config = TradingConfig(fee_bps=FEE_BPS, max_index_age_ms=MAX_AGE_MS, mm_bps=MM_BPS)
    trading = TradingScripts(scripts, keys, config, clock=lambda: NOW)
    return World(redis_client, keys, trading, model)
