"""The audit's snapshot of Redis: counters, wallets, instruments, positions, idempotency keys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftl.audit.backlog import dead_letters
from ftl.audit.replies import as_int, as_text
from ftl.persistence.stores import Stores

SNAPSHOT_CHUNK = 5000


@dataclass
class RedisSnapshot:
    trade_counter: int = 0
    position_counter: int = 0
    dirty: int = 0
    wallets: dict[int, tuple[int, int, int] | None] = field(default_factory=dict)
    instruments: dict[int, tuple[int | None, int, int, int, str] | None] = field(default_factory=dict)
    positions: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    idempotency: dict[tuple[int, str], int] = field(default_factory=dict)
    dead_letters: list[str] = field(default_factory=list)


_POS_FIELDS = ("user", "instrument", "side", "qty", "entry_notional", "margin", "status", "seq")


async def _scan_ids(stores: Stores, pattern: str) -> list[str]:
    out: list[str] = []
    async for key in stores.redis.scan_iter(match=pattern, count=5000):
        out.append(as_text(key))
    return out


async def snapshot_redis(
    stores: Stores, users: Sequence[int], instruments: Sequence[int], pg_open: Iterable[int]
) -> RedisSnapshot:
    k = stores.keys
    r = stores.redis
    prefix = k.position("")
    position_ids = {int(key[len(prefix) :]) for key in await _scan_ids(stores, prefix + "*")}
    position_ids.update(pg_open)
    idem_prefix = k.idempotency("", "")[:-2]  # "<prefix>idem:"
    idem_keys = await _scan_ids(stores, idem_prefix + ":*")
    pids = sorted(position_ids)

    # Pipelined in chunks (no MULTI: an audit must not block Redis); the caller checks the trade
    # counter did not move while reading, else the cross-key checks are skipped.
    commands: list[tuple[str, tuple[Any, ...]]] = [
        ("hmget", (k.seq, "trade", "position")),
        ("scard", (k.dirty,)),
        ("exists", (k.dirty + ":processing",)),
    ]
    commands += [("hmget", (k.wallet(uid), "available", "locked", "seq")) for uid in users]
    commands += [
        ("hmget", (k.instrument(iid), "index", "skew", "long", "short", "status")) for iid in instruments
    ]
    commands += [("hmget", (k.position(pid), *_POS_FIELDS)) for pid in pids]
    commands += [("hget", (key, "trade")) for key in idem_keys]
    replies: list[Any] = []
    for start in range(0, len(commands), SNAPSHOT_CHUNK):
        pipe = r.pipeline(transaction=False)
        for name, args in commands[start : start + SNAPSHOT_CHUNK]:
            getattr(pipe, name)(*args)
        replies += await pipe.execute()

    snap = RedisSnapshot()
    counters, dirty, processing = replies[0], replies[1], replies[2]
    snap.trade_counter = as_int(counters[0]) or 0
    snap.position_counter = as_int(counters[1]) or 0
    snap.dirty = int(dirty) + int(processing)
    snap.dead_letters = await dead_letters(stores)
    at = 3
    for uid in users:
        a, lk, seq = replies[at]
        at += 1
        snap.wallets[uid] = None if a is None else (int(a), int(lk or 0), int(seq or 0))
    for iid in instruments:
        index, skew, lng, sht, status = replies[at]
        at += 1
        snap.instruments[iid] = (
            None
            if skew is None and index is None
            else (as_int(index), int(skew or 0), int(lng or 0), int(sht or 0), as_text(status or b"open"))
        )
    for pid in pids:
        h = replies[at]
        at += 1
        if h[0] is None:
            continue
        user, iid, side, qty, en, margin, status, seq = h
        snap.positions[pid] = (
            int(user), int(iid), as_text(side), int(qty), int(en), int(margin), as_text(status), int(seq),
        )  # fmt: skip
    for key in idem_keys:
        trade = replies[at]
        at += 1
        user, _, idem = key[len(idem_prefix) + 1 :].partition(":")
        if trade is not None and user.isdigit():
            snap.idempotency[(int(user), idem)] = int(trade)
    return snap
