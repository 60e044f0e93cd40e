"""The trade service against the durable ledger: regression tests of the ledger review's defects.

Real Redis and PostgreSQL (a database of the test's own, so that the audit and the sums span
exactly this test's trades).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ftl.audit import audit
from ftl.errors import Kind, Refused
from ftl.persistence.ledger import Outcome, fold_all, persist_trade
from ftl.persistence.recovery import rebuild
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import CloseResult, OpenResult, Rejected
from ftl.trading.service import Trader, TradeService
from ftl.worker.flusher import Flusher
from tests.persistence.support import make_instrument, make_trader, trading, wipe_redis

Result = OpenResult | CloseResult


@pytest.fixture
async def stores(own_stores: Stores) -> Stores:
    return own_stores


async def _one(stores: Stores, sql: str, *args: Any) -> Any:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(sql, args)
        row = await cur.fetchone()
    return None if row is None else row[0]


def _service(stores: Stores) -> TradeService:
    return TradeService(stores, trading(stores))


async def _open(service: TradeService, user: int, iid: int, key: str, qty: int = 10) -> Result:
    return await service.open(
        Trader(user, None), instrument_id=iid, side="long", qty=qty, leverage=2,
        acceptable_price=10**6, idempotency_key=key,
    )  # fmt: skip


async def _clean_audit(stores: Stores) -> None:
    flusher = Flusher(stores)
    await flusher.flush_once()
    report = await audit(stores, wait_s=5.0, attempts=3)
    assert report.exit_code == 0, report.render()


async def test_key_reused_after_redis_forgot_it_answers_the_first_trade(stores: Stores) -> None:
    """Defect 1: the idempotency record expired in Redis; the same key and body must not trade again."""
    user, iid = await make_trader(stores), await make_instrument(stores)
    service = _service(stores)
    first = await _open(service, user, iid, "reused")
    await stores.redis.delete(stores.keys.idempotency(user, "reused"))  # its 24 h TTL ran out
    wallet = await stores.redis.hgetall(stores.keys.wallet(user))
    again = await _open(service, user, iid, "reused")
    assert again.trade_id == first.trade_id
    assert again.position_id == first.position_id
    assert await stores.redis.hgetall(stores.keys.wallet(user)) == wallet  # no second trade
    assert await _one(stores, "SELECT count(*) FROM trades WHERE idempotency_key = 'reused'") == 1
    await _clean_audit(stores)


async def test_key_reused_with_another_body_after_redis_forgot_it_is_a_conflict(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    service = _service(stores)
    await _open(service, user, iid, "k")
    await stores.redis.delete(stores.keys.idempotency(user, "k"))
    wallet = await stores.redis.hgetall(stores.keys.wallet(user))
    with pytest.raises(Refused) as err:
        await _open(service, user, iid, "k", qty=11)
    assert (err.value.kind, err.value.code) == (Kind.CONFLICT, "idempotency_conflict")
    assert await stores.redis.hgetall(stores.keys.wallet(user)) == wallet
    assert await _one(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user) == 1
    # a close reusing the key of that open is a conflict too
    with pytest.raises(Refused) as err:
        await service.close(
            Trader(user, None), position_id=1, qty=None, acceptable_price=1, idempotency_key="k"
        )
    assert err.value.code == "idempotency_conflict"


async def test_a_write_that_wrote_nothing_for_another_trade_is_never_2xx(stores: Stores) -> None:
    """The key is held in PostgreSQL by another trade: the entry is refused, not silently dropped."""
    user, iid = await make_trader(stores), await make_instrument(stores)
    a = await trading(stores).open(user_id=user, instrument_id=iid, side="long", qty=1, leverage=1,
                                   acceptable_price=10**6, idempotency_key="same")  # fmt: skip
    assert isinstance(a, OpenResult)
    async with stores.pg.connection() as conn:
        assert await persist_trade(conn, a.entry, stores.keys.prefix) is Outcome.WRITTEN
    await stores.redis.delete(stores.keys.idempotency(user, "same"))
    order: dict[str, Any] = dict(user_id=user, instrument_id=iid, side="long", qty=1, leverage=1,
                                 acceptable_price=10**6, idempotency_key="same")  # fmt: skip
    # Redis forgot the record; its used-keys set did not: PostgreSQL must be asked first
    assert await trading(stores).open(**order) == Rejected("key_used")
    # an api that wrongly found nothing there (checked) trades: the ledger still refuses the write
    b = await trading(stores).open(**order, ledger_checked=True)
    assert isinstance(b, OpenResult) and b.trade_id != a.trade_id
    async with stores.pg.connection() as conn:
        assert await persist_trade(conn, b.entry, stores.keys.prefix) is Outcome.CONFLICT
    assert await _one(stores, "SELECT count(*) FROM trades WHERE idempotency_key = 'same'") == 1


async def test_a_trade_in_flight_during_a_redis_loss_is_fenced_and_not_confirmed(stores: Stores) -> None:
    """Defect 2: Lua ran, Redis died and was rebuilt, then the api's write arrives."""
    user, iid = await make_trader(stores), await make_instrument(stores)
    service = _service(stores)
    await _open(service, user, iid, "before", qty=5)
    lost = await trading(stores).open(user_id=user, instrument_id=iid, side="long", qty=7, leverage=1,
                                      acceptable_price=10**6, idempotency_key="lost")  # fmt: skip
    assert isinstance(lost, OpenResult)
    await wipe_redis(stores)
    report = await rebuild(stores)
    assert report.epoch == int(lost.entry["epoch"]) + 1
    with pytest.raises(Refused) as err:
        await service._confirm(lost)  # the api's write after its Lua call, now too late
    assert (err.value.kind, err.value.code) == (Kind.UNAVAILABLE, "not_confirmed")
    assert await _one(stores, "SELECT count(*) FROM trades WHERE id = %s", lost.trade_id) == 0
    assert not await stores.redis.exists(stores.keys.position(lost.position_id))
    assert int(await stores.redis.hget(stores.keys.instrument(iid), "skew") or 0) == 5
    # the client's retry with the same key makes the trade once, on the new Redis
    retry = await _open(service, user, iid, "lost", qty=7)
    assert retry.trade_id != lost.trade_id
    assert await _one(stores, "SELECT count(*) FROM trades WHERE idempotency_key = 'lost'") == 1
    await _clean_audit(stores)


async def test_a_user_trade_after_a_lost_one_is_not_recorded_either(stores: Stores) -> None:
    """A later trade of the same user reflects the lost one: PostgreSQL must not take it alone."""
    user, iid = await make_trader(stores), await make_instrument(stores)
    t = trading(stores)
    a = await t.open(user_id=user, instrument_id=iid, side="long", qty=3, leverage=1,
                     acceptable_price=10**6, idempotency_key="a")  # fmt: skip
    b = await t.open(user_id=user, instrument_id=iid, side="long", qty=4, leverage=1,
                     acceptable_price=10**6, idempotency_key="b")  # fmt: skip
    assert isinstance(a, OpenResult) and isinstance(b, OpenResult)
    async with stores.pg.connection() as conn:
        assert await persist_trade(conn, b.entry, stores.keys.prefix) is Outcome.GAP
    await wipe_redis(stores)
    await rebuild(stores)
    async with stores.pg.connection() as conn:
        assert await persist_trade(conn, a.entry, stores.keys.prefix) is Outcome.FENCED
        assert await persist_trade(conn, b.entry, stores.keys.prefix) is Outcome.FENCED
    assert await _one(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user) == 0
    await _clean_audit(stores)


async def test_unknown_outcome_is_said_so_and_a_retry_returns_the_first_trade(
    stores: Stores, pg_server_url: str
) -> None:
    """Defect 4: the write cannot reach PostgreSQL; the 503 says the outcome is unknown."""
    from psycopg_pool import AsyncConnectionPool

    user, iid = await make_trader(stores), await make_instrument(stores)
    down = TradeService(stores, trading(stores))
    dead = AsyncConnectionPool(
        "postgresql://postgres@127.0.0.1:1/none", min_size=0, max_size=1, open=False, timeout=0.2
    )
    await dead.open(wait=False)
    down.ledger.pool = dead  # the ledger's database is unreachable (the look-up pool is too)
    down.ledger.timeout_s = 0.2
    down.stores = dataclasses.replace(stores, settings=stores.settings.replace(ledger_write_timeout_s=0.3))
    result = await trading(stores).open(user_id=user, instrument_id=iid, side="long", qty=2, leverage=1,
                                        acceptable_price=10**6, idempotency_key="u")  # fmt: skip
    assert isinstance(result, OpenResult)
    with pytest.raises(Refused) as err:
        await down._confirm(result)
    assert (err.value.kind, err.value.code) == (Kind.UNAVAILABLE, "outcome_unknown")
    await dead.close()
    # PostgreSQL is back: the retry with the same key confirms the first trade, once
    again = await _service(stores).open(
        Trader(user, None), instrument_id=iid, side="long", qty=2, leverage=1,
        acceptable_price=10**6, idempotency_key="u",
    )  # fmt: skip
    assert again.trade_id == result.trade_id
    assert await _one(stores, "SELECT count(*) FROM trades WHERE idempotency_key = 'u'") == 1
    await _clean_audit(stores)


async def test_audit_is_clean_after_redis_loss_right_after_a_burst(stores: Stores) -> None:
    """Defect 5: confirmed trades, nothing folded or flushed, kill Redis: PostgreSQL stays consistent."""
    users = [await make_trader(stores) for _ in range(5)]
    iid = await make_instrument(stores)
    service = _service(stores)
    for round_ in range(3):
        for i, user in enumerate(users):
            side = "long" if (i + round_) % 2 else "short"
            await service.open(Trader(user, None), instrument_id=iid, side=side, qty=1 + i, leverage=2,
                               acceptable_price=10**6 if side == "long" else 1,
                               idempotency_key=f"r{round_}")  # fmt: skip
    assert await _one(stores, "SELECT count(*) FROM ledger_pending") == 15  # nothing folded yet
    await wipe_redis(stores)
    report = await rebuild(stores)
    assert report.folded == 15 and report.repaired == (0, 0)
    skew = await _one(stores, "SELECT skew FROM instruments WHERE id = %s", iid)
    open_sum = await _one(
        stores,
        "SELECT coalesce(sum(CASE side WHEN 'long' THEN qty ELSE -qty END), 0) FROM cfd_positions "
        "WHERE instrument_id = %s AND status = 'open'",
        iid,
    )
    assert skew == open_sum == int(await stores.redis.hget(stores.keys.instrument(iid), "skew") or 0)
    await _clean_audit(stores)


async def test_rebuild_repairs_drifted_aggregates(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    await _open(_service(stores), user, iid, "x", qty=6)
    async with stores.pg.connection() as conn:
        await fold_all(conn)
        await conn.execute("UPDATE instruments SET skew = skew + 3, long_units = 1 WHERE id = %s", (iid,))
    await wipe_redis(stores)
    report = await rebuild(stores)
    assert report.repaired == (1, 0)
    assert await _one(stores, "SELECT skew * 1000 + long_units FROM instruments WHERE id = %s", iid) == 6006
    await _clean_audit(stores)
