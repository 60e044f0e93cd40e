"""Hot wallets from PostgreSQL: ensure_wallet, and sync_district after a district appears."""

from __future__ import annotations

import pytest

from ftl.persistence.hot import ensure_wallet, sync_district
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import DISTRICT_MISMATCH, OpenResult, Rejected
from tests.persistence.support import make_instrument, make_trader, trading


async def _set_district(stores: Stores, user: int, district: int | None) -> None:
    async with stores.pg.connection() as conn:
        await conn.execute("UPDATE users SET district_id = %s WHERE id = %s", (district, user))


async def _open(stores: Stores, user: int, iid: int, key: str, district: int | None) -> OpenResult | Rejected:
    return await trading(stores).open(
        user_id=user,
        instrument_id=iid,
        side="long",
        qty=10,
        leverage=2,
        acceptable_price=10**6,
        idempotency_key=key,
        district_id=district,
    )


async def test_district_set_later_reaches_the_hot_wallet_and_its_board(stores: Stores) -> None:
    user, iid = await make_trader(stores, balance=500_000), await make_instrument(stores)
    wallet, board = stores.keys.wallet(user), stores.keys.leaderboard_district(7)
    assert await stores.redis.hget(wallet, "district") == b""
    await _set_district(stores, user, 7)  # a later login with a district (COALESCE in users.py)
    assert await ensure_wallet(stores, user) is False  # the hash stays as it was
    rejected = await _open(stores, user, iid, "before", 7)
    assert rejected == Rejected(DISTRICT_MISMATCH)

    assert await sync_district(stores, user) == 7
    assert await stores.redis.hget(wallet, "district") == b"7"
    assert await stores.redis.zscore(board, str(user)) == 500_000
    opened = await _open(stores, user, iid, "after", 7)
    assert isinstance(opened, OpenResult)
    assert await stores.redis.zscore(board, str(user)) == opened.equity


async def test_moving_carries_the_overall_score_and_leaves_the_old_board(stores: Stores) -> None:
    user, iid = await make_trader(stores, district=3), await make_instrument(stores)
    assert isinstance(await _open(stores, user, iid, "k", 3), OpenResult)
    k = stores.keys
    # What a mark-to-market pass leaves: unrealised PnL and a tie-break, on both boards.
    await stores.redis.zadd(k.leaderboard_overall, {str(user): 987_654.25})
    await stores.redis.zadd(k.leaderboard_district(3), {str(user): 987_654.25})
    await _set_district(stores, user, 5)
    assert await sync_district(stores, user) == 5
    assert await stores.redis.hget(k.wallet(user), "district") == b"5"
    assert await stores.redis.zscore(k.leaderboard_district(3), str(user)) is None
    assert await stores.redis.zscore(k.leaderboard_district(5), str(user)) == 987_654.25
    assert isinstance(await _open(stores, user, iid, "k5", 5), OpenResult)


async def test_no_equity_field_scores_available_plus_locked(stores: Stores) -> None:
    user = await make_trader(stores)
    wallet = stores.keys.wallet(user)
    await stores.redis.hdel(wallet, "equity")
    await stores.redis.hset(wallet, mapping={"available": 700, "locked": 300})
    await _set_district(stores, user, 9)
    assert await sync_district(stores, user) == 9
    assert await stores.redis.zscore(stores.keys.leaderboard_district(9), str(user)) == 1000


async def test_same_district_changes_nothing(stores: Stores) -> None:
    user = await make_trader(stores, district=4)
    board = stores.keys.leaderboard_district(4)
    await stores.redis.zadd(board, {str(user): 123.5})  # not the wallet's equity: must stay
    before = await stores.redis.hgetall(stores.keys.wallet(user))
    assert await sync_district(stores, user) == 4
    assert await stores.redis.hgetall(stores.keys.wallet(user)) == before
    assert await stores.redis.zscore(board, str(user)) == 123.5


async def test_no_district_in_postgres_clears_the_hot_one(stores: Stores) -> None:
    user, iid = await make_trader(stores, district=6), await make_instrument(stores)
    assert isinstance(await _open(stores, user, iid, "k", 6), OpenResult)
    await _set_district(stores, user, None)
    assert await sync_district(stores, user) is None
    assert await stores.redis.hget(stores.keys.wallet(user), "district") == b""
    assert await stores.redis.zscore(stores.keys.leaderboard_district(6), str(user)) is None
    assert await stores.redis.zscore(stores.keys.leaderboard_overall, str(user)) is not None
    assert isinstance(await _open(stores, user, iid, "k2", None), OpenResult)


async def test_missing_wallet_is_left_to_ensure_wallet(stores: Stores) -> None:
    user = await make_trader(stores)
    await stores.redis.delete(stores.keys.wallet(user))
    await _set_district(stores, user, 8)
    assert await sync_district(stores, user) == 8
    assert await stores.redis.exists(stores.keys.wallet(user)) == 0
    assert await stores.redis.zcard(stores.keys.leaderboard_district(8)) == 0
    assert await ensure_wallet(stores, user) is True
    assert await stores.redis.hget(stores.keys.wallet(user), "district") == b"8"


async def test_unknown_user_and_the_house_are_refused(stores: Stores) -> None:
    with pytest.raises(LookupError):
        await sync_district(stores, 2**62)
    with pytest.raises(ValueError, match="not a user id"):
        await sync_district(stores, 0)  # the house (users.id 0): never on a leaderboard
