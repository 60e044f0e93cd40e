"""The used-keys set: PostgreSQL is asked about an idempotency key only when Redis cannot rule out
that a recorded trade holds it (real Redis and PostgreSQL; docs/ledger.md)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ftl.persistence.hot import start_used_keys
from ftl.persistence.recovery import rebuild
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import CloseResult, OpenResult, Rejected
from ftl.persistence.trade_scripts import key_hash
from ftl.trading.service import Trader, TradeService
from tests.persistence.support import make_instrument, make_trader, trading, wipe_redis

Result = OpenResult | CloseResult


@pytest.fixture
async def stores(own_stores: Stores) -> Stores:
    return own_stores


class CountingService(TradeService):
    """The real service; counts what it asks PostgreSQL before a script runs."""

    asked: Counter[str]

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores, trading(stores))
        self.asked = Counter()
        real_recorded, real_used = self.ledger.recorded, self.ledger.used_keys

        async def recorded(user_id: int, key: str) -> Any:
            self.asked["recorded"] += 1
            return await real_recorded(user_id, key)

        async def used_keys(user_id: int) -> list[str]:
            self.asked["used_keys"] += 1
            return await real_used(user_id)

        self.ledger.recorded = recorded  # type: ignore[method-assign]
        self.ledger.used_keys = used_keys  # type: ignore[method-assign]


async def _open(service: TradeService, user: int, iid: int, key: str, qty: int = 3) -> Result:
    return await service.open(
        Trader(user, None), instrument_id=iid, side="long", qty=qty, leverage=2,
        acceptable_price=10**6, idempotency_key=key,
    )  # fmt: skip


async def _count(stores: Stores, sql: str, *args: Any) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(sql, args)
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def test_key_hash_is_31_bits_of_sha1() -> None:
    assert key_hash("a") == int("86f7e437", 16) >> 1  # sha1("a") = 86f7e437...
    assert all(0 <= key_hash(str(i)) < 2**31 for i in range(1000))


async def test_new_keys_ask_postgres_nothing(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    service = CountingService(stores)
    ids = {(await _open(service, user, iid, f"k{i}")).trade_id for i in range(5)}
    assert len(ids) == 5
    assert service.asked == Counter()
    members = await stores.redis.smembers(stores.keys.used_keys(user))
    assert {int(m) for m in members} == {-1} | {key_hash(f"k{i}") for i in range(5)}
    assert await stores.redis.pttl(stores.keys.used_keys(user)) > 6 * 24 * 3600 * 1000


async def test_after_a_redis_loss_the_set_is_loaded_once_then_keys_are_known(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    service = CountingService(stores)
    first = await _open(service, user, iid, "before")
    await wipe_redis(stores)
    await rebuild(stores)
    await stores.redis.delete(stores.keys.idempotency(user, "before"))  # as if older than 24 h
    again = await _open(service, user, iid, "before")  # the set is loaded, the key is in it
    assert again.trade_id == first.trade_id
    assert service.asked == Counter(used_keys=1, recorded=1)
    await _open(service, user, iid, "after-1")
    await _open(service, user, iid, "after-2")
    assert service.asked == Counter(used_keys=1, recorded=1)  # nothing more
    assert await _count(stores, "SELECT count(*) FROM trades WHERE user_id = %s", user) == 3


async def test_a_hash_collision_costs_one_look_up_and_then_trades(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    await stores.redis.sadd(stores.keys.used_keys(user), key_hash("fresh"))  # another key's hash
    service = CountingService(stores)
    opened = await _open(service, user, iid, "fresh")
    assert service.asked == Counter(recorded=1)
    assert await _count(stores, "SELECT count(*) FROM trades WHERE id = %s", opened.trade_id) == 1


async def test_a_load_is_refused_when_redis_was_rebuilt_since_the_marker_was_read(stores: Stores) -> None:
    """The api reads the boot marker, then PostgreSQL; a rebuild in between (a new epoch) makes
    its read possibly older than the fence: the script refuses it and nothing changes."""
    user = await make_trader(stores)
    await make_instrument(stores)
    await stores.redis.delete(stores.keys.used_keys(user))
    epoch = (await stores.redis.get(stores.keys.boot_marker) or b"").decode()
    await stores.redis.set(stores.keys.boot_marker, str(int(epoch) + 1))
    assert await trading(stores).load_used_keys(user, epoch, ["x"]) is None
    assert await stores.redis.exists(stores.keys.used_keys(user)) == 0
    assert await trading(stores).load_used_keys(user, str(int(epoch) + 1), ["x", "y"]) == 3
    await stores.redis.delete(stores.keys.boot_marker)
    assert await trading(stores).load_used_keys(user, epoch, []) is None


async def test_the_trade_scripts_refuse_without_a_set_and_change_nothing(stores: Stores) -> None:
    user, iid = await make_trader(stores), await make_instrument(stores)
    await stores.redis.delete(stores.keys.used_keys(user))
    wallet = await stores.redis.hgetall(stores.keys.wallet(user))
    order: dict[str, Any] = dict(user_id=user, instrument_id=iid, side="long", qty=1, leverage=1,
                                 acceptable_price=10**6, idempotency_key="z")  # fmt: skip
    assert await trading(stores).open(**order) == Rejected("no_used_keys")
    # a checked key does not skip the set's presence: a trade never joins a set that is missing
    assert await trading(stores).open(**order, ledger_checked=True) == Rejected("no_used_keys")
    assert await stores.redis.hgetall(stores.keys.wallet(user)) == wallet
    assert await stores.redis.exists(stores.keys.used_keys(user)) == 0


async def test_a_new_user_starts_with_an_empty_set(stores: Stores) -> None:
    user = await make_trader(stores)
    await make_instrument(stores)  # a hot state (boot marker)
    await stores.redis.delete(stores.keys.used_keys(user))
    await start_used_keys(stores, user)
    assert await stores.redis.smembers(stores.keys.used_keys(user)) == {b"-1"}
    iid = await make_instrument(stores)
    got = await trading(stores).open(user_id=user, instrument_id=iid, side="short", qty=1, leverage=1,
                                     acceptable_price=1, idempotency_key="n")  # fmt: skip
    assert isinstance(got, OpenResult)
