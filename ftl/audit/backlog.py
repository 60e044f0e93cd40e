"""The flusher's backlog: outbox entries and unfolded trades behind the watermark, dead letters, dirty set."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ftl.audit.replies import as_text
from ftl.audit.report import EXAMPLES
from ftl.persistence.stores import Stores


async def outbox_behind(stores: Stores, watermark: int) -> int:
    """How many outbox entries of trades at most ``watermark`` are not yet flushed (0 = none)."""
    r = stores.redis
    first = await r.xrange(stores.keys.outbox, count=1)
    if not first:
        return 0
    fields = {as_text(a): as_text(b) for a, b in (first[0][1] or {}).items()}
    if int(fields.get("trade_id", "0") or 0) > watermark:
        return 0
    return int(await r.xlen(stores.keys.outbox))


async def unfolded(stores: Stores, watermark: int) -> int:
    """How many trades at most ``watermark`` are recorded but not yet folded into the aggregates."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM ledger_pending WHERE trade_id <= %s", (watermark,))
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def dead_letters(stores: Stores) -> list[str]:
    """The reasons of the entries in the dead-letter stream (the newest few)."""
    r = stores.redis
    n = int(await r.xlen(stores.keys.outbox_dead))
    if not n:
        return []
    newest: list[Any] = list(await r.xrevrange(stores.keys.outbox_dead, count=EXAMPLES) or [])
    lines = [f"{n} dead letter(s): `XRANGE {stores.keys.outbox_dead} - +` shows them"]
    for eid, fields in newest:
        f = fields or {}
        lines.append(
            f"{as_text(eid)}: {as_text(f.get(b'reason', b'?'))} (trade {as_text(f.get(b'f:trade_id', b'?'))})"
        )
    return lines


async def dirty(stores: Stores) -> int:
    """How many entries the dirty set (and its in-process copy) holds."""
    k = stores.keys
    pipe = stores.redis.pipeline(transaction=False)
    pipe.scard(k.dirty)
    pipe.exists(k.dirty + ":processing")
    a, b = await pipe.execute()
    return int(a) + int(b)


async def wait_flushed(stores: Stores, watermark: int, deadline: float) -> tuple[bool, int]:
    """Poll until every trade ≤ watermark left the outbox (required) and the dirty set is empty
    (best effort, at most 2 s more). Returns (drained, entries still behind)."""
    behind = await outbox_behind(stores, watermark) + await unfolded(stores, watermark)
    while behind and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        behind = await outbox_behind(stores, watermark) + await unfolded(stores, watermark)
    if behind:
        return False, behind
    dirty_deadline = min(deadline, time.monotonic() + 2.0)
    left = await dirty(stores)
    while left and time.monotonic() < dirty_deadline:
        await asyncio.sleep(0.05)
        left = await dirty(stores)
    return True, 0
