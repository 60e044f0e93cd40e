"""The flusher isolates poison: dead letters with a reason, the rest of the batch written."""

from __future__ import annotations

import pytest

from ftl.audit import audit
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import OpenResult
from ftl.worker.flusher import DEAD_LETTERS, Flusher, unsettled_age_s
from tests.persistence.support import make_instrument, make_trader, trading


@pytest.fixture
async def stores(own_stores: Stores) -> Stores:
    return own_stores


async def _open(stores: Stores, user: int, iid: int, key: str) -> OpenResult:
    res = await trading(stores).open(user_id=user, instrument_id=iid, side="long", qty=2, leverage=1,
                                     acceptable_price=10**6, idempotency_key=key)  # fmt: skip
    assert isinstance(res, OpenResult)
    return res


async def _count(stores: Stores, sql: str, *args: object) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(sql, args)
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def _dead(reason: str) -> float:
    return DEAD_LETTERS.labels(reason)._value.get()


async def test_poison_entries_go_to_dead_letters_and_the_rest_is_written(stores: Stores) -> None:
    good_user, bad_user = await make_trader(stores), await make_trader(stores)
    iid = await make_instrument(stores)
    before = await _open(stores, good_user, iid, "g1")
    # An entry that cannot be parsed, and one whose wallet row PostgreSQL refuses (a negative
    # balance: a non-transient error that fails every try).
    await stores.redis.xadd(stores.keys.outbox, {"trade_id": "x", "garbage": "1"})
    bad = await _open(stores, bad_user, iid, "b1")
    newest = await stores.redis.xrevrange(stores.keys.outbox, count=1)
    await stores.redis.xdel(stores.keys.outbox, newest[0][0])  # its entry, replaced by a poison copy
    fields = {k: v for k, v in bad.entry.items()}
    fields["w_available"] = "-5"
    await stores.redis.xadd(stores.keys.outbox, fields)
    after = await _open(stores, good_user, iid, "g2")
    unparseable, failed = _dead("unparseable"), _dead("write_failed")

    flusher = Flusher(stores)
    flusher.max_tries = 3
    stats = await flusher.flush_once()
    # the good user's trades are in, the garbage is dead at once, the bad trade waits for tries
    for res in (before, after):
        assert await _count(stores, "SELECT count(*) FROM trades WHERE id = %s", res.trade_id) == 1
    assert stats.dead == 1 and _dead("unparseable") == unparseable + 1
    for _ in range(3):
        await flusher.flush_once()
    assert _dead("write_failed") == failed + 1
    assert await stores.redis.xlen(stores.keys.outbox_dead) == 2
    assert await _count(stores, "SELECT count(*) FROM trades WHERE user_id = %s", bad_user) == 0
    dead = await stores.redis.xrange(stores.keys.outbox_dead)
    reasons = sorted(f[b"reason"].decode()[:11] for _, f in dead)
    assert reasons[0].startswith("unparseable") or reasons[1].startswith("unparseable")
    assert await stores.redis.xlen(stores.keys.outbox) == 0
    assert await unsettled_age_s(stores) < 60
    report = await audit(stores, wait_s=3.0, attempts=2)
    assert report.exit_code == 1  # the audit reports the dead letters
    assert any("dead letters" in c.name and c.mismatches for c in report.checks), report.render()


async def test_a_trade_waiting_for_its_predecessor_is_written_once_it_lands(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    a = await _open(stores, user, iid, "a")
    b = await _open(stores, user, iid, "b")
    # Only b's entry is in the outbox (a's write is still on its way from the api): b waits.
    await stores.redis.xtrim(stores.keys.outbox, maxlen=1, approximate=False)
    flusher = Flusher(stores)
    stats = await flusher.flush_once()
    assert stats.trades == 0 and await stores.redis.xlen(stores.keys.outbox) == 1
    from ftl.persistence.ledger import Outcome, persist_trade

    async with stores.pg.connection() as conn:
        assert await persist_trade(conn, a.entry, stores.keys.prefix) is Outcome.WRITTEN
    stats = await flusher.flush_once()
    assert (stats.trades, stats.new_trades) == (1, 1)
    assert await _count(stores, "SELECT count(*) FROM trades WHERE id = %s", b.trade_id) == 1
    assert await _count(stores, "SELECT count(*) FROM ledger_pending") == 0  # folded in the pass
