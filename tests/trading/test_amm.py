"""Properties of the pure AMM (hypothesis): path-independent cost, rounding against the trader, bounds."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ftl.trading import amm


@dataclass(frozen=True)
class State:
    index: int
    depth: int
    cap: int
    skew: int


@st.composite
def states(draw: st.DrawFn, max_price: int = amm.MAX_PRICE, max_depth: int = amm.MAX_DEPTH) -> State:
    depth = draw(st.integers(2, max_depth))
    cap = draw(st.integers(1, depth - 1))
    return State(
        index=draw(st.integers(1, max_price)),
        depth=depth,
        cap=cap,
        skew=draw(st.integers(-cap, cap)),
    )


sides = st.sampled_from(["long", "short"])
fees = st.integers(0, amm.MAX_FEE_BPS)
leverages = st.integers(amm.MIN_LEVERAGE, amm.MAX_LEVERAGE)


def room(s: State, side: amm.Side) -> int:
    """How many units one can trade on ``side`` before the cap."""
    return min(amm.MAX_QTY, s.cap - s.skew if side == "long" else s.cap + s.skew)


@given(states(), sides, st.data())
def test_cost_is_path_independent_and_splitting_never_gains(
    s: State, side: amm.Side, data: st.DataObject
) -> None:
    total = room(s, side)
    assume(total >= 2)
    n = data.draw(st.integers(2, total))
    k = data.draw(st.integers(1, n - 1))
    d = 1 if side == "long" else -1
    q, q1, q2 = d * n, d * k, d * (n - k)
    whole = amm.fill_price_exact(s.index, s.skew, s.depth, q) * n
    split = amm.fill_price_exact(s.index, s.skew, s.depth, q1) * k + amm.fill_price_exact(
        s.index, s.skew + q1, s.depth, q2
    ) * (n - k)
    assert whole == split  # q F(q) = integral of the mark: cost depends only on the state
    n_whole = amm.notional(s.index, s.skew, s.depth, q)
    n_split = amm.notional(s.index, s.skew, s.depth, q1) + amm.notional(s.index, s.skew + q1, s.depth, q2)
    if side == "long":
        assert n_split >= n_whole  # a buyer pays at least as much in pieces
    else:
        assert n_split <= n_whole  # a seller receives at most as much in pieces
    fee_bps = data.draw(fees)
    lev = data.draw(leverages)
    one = amm.quote(s.index, s.skew, s.depth, side, n, lev, fee_bps)
    a = amm.quote(s.index, s.skew, s.depth, side, k, lev, fee_bps)
    b = amm.quote(s.index, s.skew + q1, s.depth, side, n - k, lev, fee_bps)
    assert a.fee + b.fee >= one.fee or side == "short"
    if side == "long":
        assert a.cost + b.cost >= one.cost


@given(states(), sides, fees, leverages, st.data())
def test_round_trip_at_constant_index_loses_the_fees_and_at_most_two_cents(
    s: State, side: amm.Side, fee_bps: int, lev: int, data: st.DataObject
) -> None:
    total = room(s, side)
    assume(total >= 1)
    n = data.draw(st.integers(1, total))
    o = amm.quote(s.index, s.skew, s.depth, side, n, lev, fee_bps)
    after = s.skew + amm.signed_qty(side, n)
    c = amm.close_amounts(s.index, after, s.depth, side, n, o.notional, o.margin, n, fee_bps)
    assert after + amm.close_q(side, n) == s.skew
    net = c.payout - o.cost
    fees_paid = o.fee + c.fee
    assert -fees_paid - 2 <= net <= 0  # never a profit; never more than the fees and 2 cents
    if c.payout > 0:  # not clipped at zero: exactly the fees, plus the rounding
        assert net <= -fees_paid
    assert c.realised_pnl <= 0


@given(states(), sides, st.data())
def test_rounding_is_against_the_trader(s: State, side: amm.Side, data: st.DataObject) -> None:
    total = room(s, side)
    assume(total >= 1)
    n = data.draw(st.integers(1, total))
    q = amm.signed_qty(side, n)
    exact_price = amm.fill_price_exact(s.index, s.skew, s.depth, q)
    exact_notional = exact_price * n
    got = amm.notional(s.index, s.skew, s.depth, q)
    price = amm.fill_price(s.index, s.skew, s.depth, q)
    if q > 0:  # the trader pays
        assert exact_notional <= got < exact_notional + 1
        assert exact_price <= price < exact_price + 1
    else:  # the trader receives
        assert exact_notional - 1 < got <= exact_notional
        assert price == max(1, int(exact_price))
    fee_bps = data.draw(fees)
    fee = amm.fee(got, fee_bps)
    assert Fraction(got * fee_bps, amm.BPS) <= fee < Fraction(got * fee_bps, amm.BPS) + 1
    lev = data.draw(leverages)
    m = amm.margin(got, lev)
    assert m * lev >= got > (m - 1) * lev


@given(states(), sides, st.data())
def test_partial_closes_never_gain_over_one_close(s: State, side: amm.Side, data: st.DataObject) -> None:
    total = room(s, side)
    assume(total >= 2)
    n = data.draw(st.integers(2, total))
    k = data.draw(st.integers(1, n - 1))
    fee_bps = data.draw(fees)
    o = amm.quote(s.index, s.skew, s.depth, side, n, 1, fee_bps)
    after = s.skew + amm.signed_qty(side, n)
    whole = amm.close_amounts(s.index, after, s.depth, side, n, o.notional, o.margin, n, fee_bps)
    first = amm.close_amounts(s.index, after, s.depth, side, n, o.notional, o.margin, k, fee_bps)
    mid = after + amm.close_q(side, k)
    rest = amm.close_amounts(
        s.index, mid, s.depth, side, n - k, o.notional - first.entry_part, o.margin - first.released,
        n - k, fee_bps,
    )  # fmt: skip
    assert first.entry_part + rest.entry_part == o.notional
    assert first.released + rest.released == o.margin
    assert first.realised_pnl + rest.realised_pnl <= whole.realised_pnl
    assert first.payout + rest.payout <= whole.payout


@given(states(), sides, leverages, fees, st.data())
def test_every_intermediate_is_exact_in_lua_within_the_bounds(
    s: State, side: amm.Side, lev: int, fee_bps: int, data: st.DataObject
) -> None:
    total = room(s, side)
    assume(total >= 1)
    n = data.draw(st.integers(1, total))
    acceptable = data.draw(st.integers(1, amm.MAX_ACCEPTABLE))
    # amm.exact() raises OverflowError on any product of 2^53 or more.
    o = amm.quote(s.index, s.skew, s.depth, side, n, lev, fee_bps)
    amm.slippage_ok(s.index, s.skew, s.depth, amm.signed_qty(side, n), acceptable)
    after = s.skew + amm.signed_qty(side, n)
    k = data.draw(st.integers(1, n))
    amm.close_amounts(s.index, after, s.depth, side, n, o.notional, o.margin, k, fee_bps)
    m = amm.mark(s.index, after, s.depth)
    amm.is_liquidatable(side, n, o.notional, o.margin, m, data.draw(st.integers(0, amm.MAX_MM_BPS)))
    assert o.notional * fee_bps < amm.LUA_EXACT


def test_the_worst_case_products_fit() -> None:
    s, i, q = amm.MAX_DEPTH, amm.MAX_PRICE, amm.MAX_QTY
    cap = s - 1
    # qty * index * (2S + 2s + q) with s and s + q at the cap
    worst = q * i * (2 * s + 2 * cap + q)
    assert worst < amm.LUA_EXACT
    amm.quote(i, cap - q, s, "long", q, 1, amm.MAX_FEE_BPS)
    amm.quote(i, -cap + q, s, "short", q, 1, amm.MAX_FEE_BPS)
    assert amm.MAX_ACCEPTABLE * 2 * s < amm.LUA_EXACT
    with pytest.raises(OverflowError):
        amm.exact(amm.LUA_EXACT)


@given(states(max_depth=20_000), sides, leverages, fees, st.integers(0, 10**9))
def test_budget_to_qty_is_the_largest_affordable(
    s: State, side: amm.Side, lev: int, fee_bps: int, budget: int
) -> None:
    n = amm.budget_to_qty(budget, s.index, s.skew, s.depth, s.cap, side, lev, fee_bps)
    if n > 0:
        assert amm.quote(s.index, s.skew, s.depth, side, n, lev, fee_bps).cost <= budget
    if n < room(s, side):
        assert amm.quote(s.index, s.skew, s.depth, side, n + 1, lev, fee_bps).cost > budget


@given(states(), sides, leverages, st.integers(0, 5_000), st.data())
def test_liquidation_price_separates_healthy_from_liquidatable(
    s: State, side: amm.Side, lev: int, mm_bps: int, data: st.DataObject
) -> None:
    total = room(s, side)
    assume(total >= 1)
    n = data.draw(st.integers(1, total))
    o = amm.quote(s.index, s.skew, s.depth, side, n, lev, 0)
    p = amm.liquidation_price(side, n, o.notional, o.margin, mm_bps)
    if p is None:
        assert side == "long"
        assert not amm.is_liquidatable(side, n, o.notional, o.margin, 1, mm_bps)
        return
    if side == "long":
        assert not amm.is_liquidatable(side, n, o.notional, o.margin, p + 1, mm_bps)
        if p >= 1:
            assert amm.is_liquidatable(side, n, o.notional, o.margin, p - 1, mm_bps) or p - 1 == 0
    else:
        assert amm.is_liquidatable(side, n, o.notional, o.margin, p + 2, mm_bps)
        if p >= 1:
            assert not amm.is_liquidatable(side, n, o.notional, o.margin, p - 1, mm_bps)


def test_mark_and_fill_examples() -> None:
    assert amm.mark(1000, 0, 10_000) == 1000
    assert amm.mark(1000, 500, 10_000) == 1050
    assert amm.mark(1000, -500, 10_000) == 950
    # F(100) at s=0: 1000 * (1 + 50/10000) = 1005 exactly; N = 100 500
    assert amm.notional(1000, 0, 10_000, 100) == 100_500
    assert amm.fill_price(1000, 0, 10_000, 100) == 1005
    assert amm.notional(1000, 0, 10_000, -100) == 99_500
    assert amm.fee(100_500, 10) == 101  # 100.5 ceiled
    assert amm.margin(100_500, 3) == 33_500
    with pytest.raises(ValueError, match="leverage"):
        amm.margin(100, 6)


# ---- closes are never capped (defect 7): any skew, even past the depth ----


@st.composite
def any_skew_states(draw: st.DrawFn) -> State:
    """Instruments at any skew a close may meet: past the cap, past the depth, up to MAX_SKEW."""
    depth = draw(st.integers(1, amm.MAX_DEPTH))
    near = st.integers(-3 * depth - amm.MAX_QTY, 3 * depth + amm.MAX_QTY)
    return State(
        index=draw(st.integers(1, amm.MAX_PRICE)),
        depth=depth,
        cap=draw(st.integers(0, depth - 1)),
        skew=draw(
            st.one_of(
                near, st.integers(-amm.MAX_SKEW, amm.MAX_SKEW), st.sampled_from([-amm.MAX_SKEW, amm.MAX_SKEW])
            )
        ),
    )


@given(any_skew_states(), st.integers(1, amm.MAX_QTY), st.sampled_from([1, -1]), fees, st.data())
def test_a_trade_at_any_skew_fills_between_a_cent_and_twice_the_index(
    s: State, n: int, d: int, fee_bps: int, data: st.DataObject
) -> None:
    q = d * n
    # amm.exact() raises OverflowError on any product of 2^53 or more.
    num = amm.fill_num(s.index, s.skew, s.depth, q)
    assert 2 * s.depth * n <= num <= 4 * s.index * s.depth * n
    exact_price = amm.fill_price_exact(s.index, s.skew, s.depth, q)
    assert 1 <= exact_price <= 2 * s.index
    price = amm.fill_price(s.index, s.skew, s.depth, q)
    got = amm.notional(s.index, s.skew, s.depth, q)
    assert 1 <= price <= 2 * s.index
    assert n <= got <= 2 * s.index * n  # a sell never below 1 cent a unit, never negative
    for skew in (s.skew, s.skew + q):
        assert 1 <= amm.mark(s.index, skew, s.depth) <= 2 * s.index
    acceptable = data.draw(st.integers(1, amm.MAX_ACCEPTABLE))
    ok = amm.slippage_ok(s.index, s.skew, s.depth, q, acceptable)
    assert ok == (exact_price <= acceptable if q > 0 else exact_price >= acceptable)
    assert amm.slippage_ok(s.index, s.skew, s.depth, q, amm.MAX_ACCEPTABLE if q > 0 else 1)
    # a close of a position opened at any price: every product fits, nobody goes negative
    side: amm.Side = "short" if q > 0 else "long"
    entry = data.draw(st.integers(n, 2 * amm.MAX_PRICE * n))
    margin = data.draw(st.integers(0, entry))
    pos_qty = data.draw(st.integers(n, amm.MAX_QTY))
    c = amm.close_amounts(s.index, s.skew, s.depth, side, pos_qty, entry, margin, n, fee_bps)
    assert c.payout >= 0 and 0 <= c.released <= margin and c.notional == got
    m = amm.mark(s.index, s.skew, s.depth)
    amm.is_liquidatable(side, pos_qty, entry, margin, m, data.draw(st.integers(0, amm.MAX_MM_BPS)))


@given(any_skew_states(), st.integers(2, amm.MAX_QTY), st.sampled_from([1, -1]), st.data())
def test_the_cost_at_any_skew_is_path_independent(s: State, n: int, d: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, n - 1))
    whole = amm.fill_price_exact(s.index, s.skew, s.depth, d * n) * n
    first = amm.fill_price_exact(s.index, s.skew, s.depth, d * k) * k
    rest = amm.fill_price_exact(s.index, s.skew + d * k, s.depth, d * (n - k)) * (n - k)
    assert whole == first + rest  # splitting a close gains nothing, however extreme the skew
    there = amm.notional(s.index, s.skew, s.depth, d * n)
    back = amm.notional(s.index, s.skew + d * n, s.depth, -d * n)
    assert 0 <= (there - back) * d <= 1  # a round trip at a constant index never gains


@given(states(), sides, st.data())
def test_within_the_cap_the_fill_is_the_linear_amm(s: State, side: amm.Side, data: st.DataObject) -> None:
    total = room(s, side)
    assume(total >= 1)
    n = data.draw(st.integers(1, total))
    q = amm.signed_qty(side, n)
    # the clamp only bites where the linear mark falls below 1 cent (low_skew)
    assume(min(s.skew, s.skew + q) >= amm.low_skew(s.index, s.depth))
    assert amm.fill_num(s.index, s.skew, s.depth, q) == n * s.index * (2 * s.depth + 2 * s.skew + q)
    assert amm.mark(s.index, s.skew, s.depth) == s.index * (s.depth + s.skew) // s.depth


def test_extreme_skew_examples() -> None:
    # index 10.00, depth 2000: lo = -2000 + ceil(2000/1000) = -1998, the lowest skew at >= 1 cent
    assert amm.low_skew(1_000, 2_000) == -1_998
    assert amm.mark(1_000, -1_998, 2_000) == 1 and amm.mark(1_000, -1_999, 2_000) == 1
    assert amm.mark(1_000, -(10**15), 2_000) == 1 and amm.mark(1_000, 10**15, 2_000) == 2_000
    # selling 500 from -1900: 98 units on the line, 402 on the 1-cent floor (was a negative notional)
    assert amm.notional(1_000, -1_900, 2_000, -500) == 2_901
    assert amm.fill_price(1_000, -1_900, 2_000, -500) == 5
    assert amm.notional(1_000, -5_000, 2_000, -500) == 500
    assert amm.notional(1_000, 5_000, 2_000, 500) == 1_000_000  # 2I a unit above the depth
    assert amm.low_skew(1, 2_000) == 0  # index 1 cent: every negative skew marks at 1 cent
    assert amm.low_skew(amm.MAX_PRICE, 10) == -9
