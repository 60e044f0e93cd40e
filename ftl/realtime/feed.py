"""One pattern subscription to ``price:*`` per process, kept alive across Redis restarts."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis

from ftl import logs
from ftl.persistence.keys import Keys
from ftl.realtime import metrics
from ftl.realtime.hub import Hub
from ftl.realtime.protocol import parse_update
from ftl.realtime.snapshots import Snapshotter

log = logs.get(__name__)


class PriceFeed:
    """Reads every PRICE_UPDATE once and hands it to the hub; re-snapshots after a reconnect."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, hub: Hub, snapshots: Snapshotter) -> None:
        self.redis = redis
        self.pattern = keys.price_pattern
        self.hub = hub
        self.snapshots = snapshots
        self.subscribed = asyncio.Event()
        self.subscriptions = 0  # confirmed PSUBSCRIBEs: every one after the first is a reconnect

    async def run(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
            try:
                await pubsub.psubscribe(self.pattern)
                async for message in pubsub.listen():
                    backoff = 0.05
                    self.handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                log.warning("price feed lost its Redis subscription", error=repr(exc), retry_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):  # a broken connection may fail to close
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call, unused-ignore]

    def handle(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "pmessage":
            data = message.get("data")
            update = parse_update(data) if isinstance(data, bytes) else None
            if update is None:
                metrics.BAD_UPDATES.inc()
                return
            metrics.UPDATES.inc()
            start = time.perf_counter()
            if self.hub.publish(update):
                metrics.FANOUT.observe(time.perf_counter() - start)
                if update.ts:
                    metrics.LAG.observe(max(time.time() - update.ts / 1000, 0.0))
        elif kind == "psubscribe":
            self.subscriptions += 1
            self.subscribed.set()
            if self.subscriptions > 1:
                metrics.REDIS_RECONNECTS.inc()
                due = self.hub.resnapshot_all()
                log.info("price feed re-subscribed; sending fresh snapshots", sockets=len(due))
                for client, ids in due:
                    self.snapshots.request(client, ids, attempt=1)
            else:
                log.info("price feed subscribed", pattern=self.pattern)
