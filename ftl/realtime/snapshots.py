"""Snapshots on subscribe: batched reads of instrument hashes, one PRICE_UPDATE frame per instrument."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis

from ftl import logs
from ftl.persistence.keys import Keys
from ftl.realtime import protocol
from ftl.realtime.hub import Client, Hub
from ftl.trading.amm import mark

log = logs.get(__name__)

FIELDS = ("index", "skew", "depth", "pseq")


def snapshot_frame(instrument_id: int, values: list[bytes | None], now_ms: int) -> bytes | None:
    """The framed snapshot of one instrument from its hash fields, or None if it has no price."""
    try:
        index, skew, depth, pseq = (int(v) if v is not None else None for v in values)
        if index is None or depth is None or depth <= 0:
            return None
        skew = skew or 0
        price = mark(index, skew, depth)
    except (ValueError, OverflowError):
        return None
    payload = protocol.price_update(
        instrument_id, price, pseq or 0, now_ms, index=index, skew=skew, snapshot=True
    )
    return protocol.frame(payload)


class Snapshotter:
    """Collects (client, ids) requests and serves them with one Redis pipeline per batch."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, hub: Hub, *, retry_s: float = 1.0, retries: int = 90
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.hub = hub
        self.retry_s = retry_s
        self.retries = retries
        self.queue: list[tuple[Client, tuple[int, ...], int]] = []
        self.task: asyncio.Task[None] | None = None

    def request(self, client: Client, ids: tuple[int, ...], attempt: int = 0) -> None:
        """Queue snapshots; ``attempt`` 0 is a fresh subscribe, more is a re-snapshot after a loss.

        A fresh subscribe to an instrument Redis does not know answers ``unknown_instrument``; a
        re-snapshot keeps the subscription and retries, since Redis may still be rebuilding.
        """
        if not ids:
            return
        self.queue.append((client, ids, attempt))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                await self._serve(batch)
            except Exception as exc:  # Redis down or a stale pooled connection: try again soon
                log.warning("snapshot read failed", error=repr(exc), requests=len(batch))
                loop = asyncio.get_running_loop()
                for client, ids, attempt in batch:
                    if attempt < self.retries:
                        loop.call_later(self.retry_s, self._retry, client, ids, attempt + 1)

    async def _serve(self, batch: list[tuple[Client, tuple[int, ...], int]]) -> None:
        wanted = sorted({iid for client, ids, _ in batch if not client.closed for iid in ids})
        if not wanted:
            return
        pipe = self.redis.pipeline(transaction=False)
        for iid in wanted:
            pipe.hmget(self.keys.instrument(iid), FIELDS)
        rows = await pipe.execute()
        now_ms = int(time.time() * 1000)
        frames = {iid: snapshot_frame(iid, row, now_ms) for iid, row in zip(wanted, rows, strict=True)}
        loop = asyncio.get_running_loop()
        for client, ids, attempt in batch:
            if client.closed:
                continue
            missing = [iid for iid in ids if frames.get(iid) is None and iid in client.subs]
            for iid in ids:
                data = frames.get(iid)
                if data is not None:
                    self.hub.snapshot(client, iid, data)
            if missing and attempt > 0:
                if attempt < self.retries:
                    loop.call_later(self.retry_s, self._retry, client, tuple(missing), attempt + 1)
            elif missing:
                self.hub.unsubscribe(client, missing)
                self.hub.control(client, protocol.error("unknown_instrument", "no such instrument", missing))

    def _retry(self, client: Client, ids: tuple[int, ...], attempt: int) -> None:
        due = tuple(iid for iid in ids if iid in client.awaiting)
        if due and not client.closed:
            self.request(client, due, attempt)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
