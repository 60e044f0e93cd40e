"""The api role's price feed: poll (one replica at a time), normalise, move indexes, record ticks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import psycopg
import psycopg_pool

from ftl import logs
from ftl.persistence.leader import LeaderLock
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import Rejected
from ftl.persistence.trade_scripts import TradingScripts
from ftl.pricing import feed_state, ticks
from ftl.pricing.feed import open_feed
from ftl.pricing.model import IndexChange
from ftl.pricing.normalise import FeedState, Normaliser
from ftl.pricing.poller import Poller, PollerConfig

log = logs.get(__name__)


class PriceFeed:
    """Wires the poller's changes to ``index_update.lua`` (which publishes) and ``price_ticks``."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        s = stores.settings
        self.feed = open_feed(
            s.feed,
            sportmonks_url=s.sportmonks_url,
            sportmonks_token=s.sportmonks_token,
            replay_speed=s.replay_speed,
        )
        self.trading = TradingScripts(stores.scripts, stores.keys)
        self.writer = ticks.TickWriter(stores.pg)
        self.poller: Poller | None = None
        if self.feed is not None:
            lock = LeaderLock(stores.scripts, stores.keys, "pricing-poller", ttl_ms=10_000)
            self.poller = Poller(
                self.feed,
                Normaliser.from_states({}),
                self.apply,
                lock,
                load_states=self.load,
                config=PollerConfig(calls_per_hour=s.sportmonks_calls_per_hour),
            )

    async def load(self) -> FeedState:
        """The feed's state as the last poll left it (docs/pricing.md, "Restarts")."""
        async with self.stores.pg.connection() as conn:
            return await feed_state.load(conn)

    async def apply(self, changes: Sequence[IndexChange]) -> None:
        for c in changes:
            # Every change states the halt status: a halt that expires in the same poll as a
            # rating change must lift (a change with halt_until None means "trades normally").
            status = c.status
            result = await self.trading.update_index(
                instrument_id=c.instrument_id,
                index_price=c.index_cents if c.repriced else None,
                ts=c.ts_ms,
                status=status,
            )
            if isinstance(result, Rejected):
                log.warning("index update refused", instrument=c.instrument_id, code=result.code)
        self.writer.add([c for c in changes if c.repriced])
        await self.save()

    async def save(self) -> None:
        """Store the normaliser's state after a poll. On failure the changes stay marked and go
        with the next poll's save; a restart meanwhile resumes from the last stored state."""
        if self.poller is None:
            return
        try:
            async with self.stores.pg.connection() as conn:
                await feed_state.save(conn, self.poller.normaliser)
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            log.warning("saving the price feed state failed; retried next poll", error=repr(exc))

    async def run(self, stop: asyncio.Event) -> None:
        if self.poller is None:
            await stop.wait()
            return
        tasks = [asyncio.create_task(self.poller.run()), asyncio.create_task(self.writer.run())]
        try:
            await stop.wait()
        finally:
            self.poller.stop()
            await self.writer.aclose()
            await asyncio.wait(tasks, timeout=3.0)
            for task in tasks:
                task.cancel()
            if self.feed is not None:
                await self.feed.aclose()
