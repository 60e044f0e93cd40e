"""Pure arithmetic of the oracle-anchored linear-skew AMM and of isolated-margin CFD positions.

Every function mirrors the Lua scripts in ``lua/`` exactly (same integer formulas, same rounding),
so it doubles as the reference the tests compare the scripts with. All money is integer cents,
all quantities integer units; every fill is rounded against the trader: ceil what he pays (a buy:
opening a long or closing a short), floor what he receives (a sell).

Within the bounds below every intermediate product stays below 2^53, so Lua's doubles compute it
exactly; :func:`exact` raises if a caller ever leaves that range.

The mark curve is ``m(x) = I (1 + x/S)`` with the skew ``x`` clamped into ``[low_skew, S]``:
``low_skew = -S + ceil(S/I)`` is the lowest skew whose mark is at least 1 cent, and at ``S`` the
mark is ``2I``. Opens keep the skew within the cap (< S), but closes and liquidations are never
capped (skew = Σ open long - Σ open short can then pass ``±S``); the clamp keeps every mark and
every fill between 1 cent and ``2I`` a unit and every product bounded. A fill costs the integral
of that curve along the trade's path, so the cost still depends only on the state. Where the
linear mark is at least 1 cent along the whole path, all of this is the plain linear AMM.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

# The limits are declared once, in ftl/limits.py (re-exported here for the AMM's callers).
from ftl.limits import MAX_ACCEPTABLE as MAX_ACCEPTABLE
from ftl.limits import MAX_DEPTH as MAX_DEPTH
from ftl.limits import MAX_FEE_BPS as MAX_FEE_BPS
from ftl.limits import MAX_LEVERAGE as MAX_LEVERAGE
from ftl.limits import MAX_MM_BPS as MAX_MM_BPS
from ftl.limits import MAX_PRICE as MAX_PRICE
from ftl.limits import MAX_QTY as MAX_QTY
from ftl.limits import MAX_SKEW as MAX_SKEW
from ftl.limits import MIN_LEVERAGE as MIN_LEVERAGE
from ftl.persistence.trade_replies import Side as Side  # re-exported: the side of a position

LUA_EXACT = 2**53
"""Lua numbers are doubles: integers are exact strictly below this."""

BPS = 10_000


def exact(x: int) -> int:
    """Return ``x``, or raise if Lua could not hold it exactly (|x| >= 2^53)."""
    if not -LUA_EXACT < x < LUA_EXACT:
        raise OverflowError(f"{x} is not exact in a Lua number")
    return x


def floor_div(a: int, b: int) -> int:
    return exact(a) // b


def ceil_div(a: int, b: int) -> int:
    return -(-exact(a) // b)


def signed_qty(side: Side, qty: int) -> int:
    """Signed size of an opening order: > 0 buys (long), < 0 sells (short)."""
    return qty if side == "long" else -qty


def within_cap(skew: int, q: int, cap: int) -> bool:
    """True when the trade keeps ``|s + q| <= s_max``: the check of an open, and of opens only.

    Reducing or closing a position is never refused for the cap (it may leave ``|s| > s_max``)."""
    return abs(skew + q) <= cap


def low_skew(index: int, depth: int) -> int:
    """The lowest skew whose mark is at least 1 cent: ``-S + ceil(S/I)`` (in ``(-S, 0]``)."""
    return -(-depth // index) - depth


def pricing_skew(index: int, skew: int, depth: int) -> int:
    """The skew the mark curve is read at: ``skew`` clamped into ``[low_skew, S]``."""
    return min(max(skew, low_skew(index, depth)), depth)


def mark(index: int, skew: int, depth: int) -> int:
    """Mark price ``m(s) = I * (1 + s/S)``, ``s`` clamped (:func:`pricing_skew`), floored to a cent.

    Always between 1 and ``2I`` cents, whatever the skew.
    """
    return floor_div(index * (depth + pricing_skew(index, skew, depth)), depth)


def fill_num(index: int, skew: int, depth: int, q: int) -> int:
    """``2S`` times the exact cost of trading ``q`` units from skew ``s``: ``2S ∫ m(x) dx`` over the
    path from ``s`` to ``s + q``, the mark read at the clamped skew (flat below ``low_skew`` and
    above ``S``).

    Where the path stays within ``[low_skew, S]`` this is ``|q| * I * (2S + 2s + q)``, the linear
    AMM's ``|q| F(q) 2S``. Each unit adds between ``2S`` (1 cent) and ``4IS`` (``2I``), so the
    result is at most ``4 I S |q| <= 4 * 10^15 < 2^53`` for any skew (|s| <= MAX_SKEW).
    """
    lo = low_skew(index, depth)
    a, b = (skew, skew + q) if q >= 0 else (skew + q, skew)
    ca, cb = min(max(a, lo), depth), min(max(b, lo), depth)
    below = min(b, lo) - min(a, lo)  # units traded where the mark is flat at m(lo) >= 1 cent
    above = max(b, depth) - max(a, depth)  # units traded where it is flat at 2I
    inside = exact((cb - ca) * (2 * depth + ca + cb))
    return exact(index * exact(2 * (depth + lo) * below + inside + 4 * depth * above))


def fill_price_exact(index: int, skew: int, depth: int, q: int) -> Fraction:
    """The average fill price of ``q`` units (``q != 0``) as an exact fraction.

    ``F(q) = I * (1 + (s + q/2)/S)`` where the linear mark is at least 1 cent along the path.
    """
    return Fraction(fill_num(index, skew, depth, q), 2 * depth * abs(q))


def fill_price(index: int, skew: int, depth: int, q: int) -> int:
    """Per-unit fill price in cents, rounded against the trader (at least 1 cent)."""
    num = fill_num(index, skew, depth, q)
    per = exact(2 * depth * abs(q))
    price = ceil_div(num, per) if q > 0 else floor_div(num, per)
    return max(price, 1)


def notional(index: int, skew: int, depth: int, q: int) -> int:
    """``|q| * F(q)`` in cents: ceil for a buy (q > 0), floor for a sell (q < 0); >= |q|."""
    num = fill_num(index, skew, depth, q)
    return ceil_div(num, 2 * depth) if q > 0 else floor_div(num, 2 * depth)


def slippage_ok(index: int, skew: int, depth: int, q: int, acceptable: int) -> bool:
    """A buy needs ``F <= acceptable``, a sell ``F >= acceptable`` (exact comparison).

    ``F <= 2I`` always, so an acceptable price above ``2I`` compares as ``2I + 1``: that keeps
    ``acceptable * 2S|q|`` below 2^53.
    """
    num = fill_num(index, skew, depth, q)
    limit = exact(min(acceptable, 2 * index + 1) * 2 * depth * abs(q))
    return num <= limit if q > 0 else num >= limit


def fee(notional_cents: int, fee_bps: int) -> int:
    """Fee on a notional, ceiled (the trader pays it)."""
    return ceil_div(notional_cents * fee_bps, BPS)


def margin(notional_cents: int, leverage: int) -> int:
    """Initial margin ``M >= N / leverage``, ceiled."""
    if not MIN_LEVERAGE <= leverage <= MAX_LEVERAGE:
        raise ValueError(f"leverage {leverage} is outside {MIN_LEVERAGE}..{MAX_LEVERAGE}")
    return ceil_div(notional_cents, leverage)


def unrealised_pnl(side: Side, qty: int, entry_notional: int, price: int) -> int:
    """Long ``q*p - N_e``, short ``N_e - q*p``."""
    value = exact(qty * price)
    return value - entry_notional if side == "long" else entry_notional - value


def equity(margin_cents: int, upnl: int) -> int:
    """Equity of an isolated position: ``E = M + uPnL``."""
    return margin_cents + upnl


def is_liquidatable(
    side: Side, qty: int, entry_notional: int, margin_cents: int, mark_price: int, mm_bps: int
) -> bool:
    """``E < mm * |q| * p`` with ``p`` the mark, compared in basis points."""
    e = equity(margin_cents, unrealised_pnl(side, qty, entry_notional, mark_price))
    return exact(e * BPS) < exact(mm_bps * exact(qty * mark_price))


def liquidation_price(
    side: Side, qty: int, entry_notional: int, margin_cents: int, mm_bps: int
) -> int | None:
    """The mark at which the position becomes liquidatable (approximately; for display).

    Long: liquidated below ``(N_e - M) / (q (1 - mm))``; short: above ``(N_e + M) / (q (1 + mm))``.
    None when a long can never be liquidated (margin covers the whole notional, mm < 100 %).
    """
    if side == "long":
        if mm_bps >= BPS:
            return None
        num = (entry_notional - margin_cents) * BPS
        if num <= 0:
            return None
        return num // (qty * (BPS - mm_bps))
    return (entry_notional + margin_cents) * BPS // (qty * (BPS + mm_bps))


@dataclass(frozen=True, slots=True)
class Quote:
    """What an opening order would cost at the current state."""

    price: int
    notional: int
    fee: int
    margin: int

    @property
    def cost(self) -> int:
        """Cash taken from ``available``: the margin locked plus the fee."""
        return self.margin + self.fee


def quote(index: int, skew: int, depth: int, side: Side, qty: int, leverage: int, fee_bps: int) -> Quote:
    """Price, notional, fee and margin of opening ``qty`` units on ``side``."""
    q = signed_qty(side, qty)
    n = notional(index, skew, depth, q)
    return Quote(fill_price(index, skew, depth, q), n, fee(n, fee_bps), margin(n, leverage))


def budget_to_qty(
    budget: int,
    index: int,
    skew: int,
    depth: int,
    cap: int,
    side: Side,
    leverage: int,
    fee_bps: int,
) -> int:
    """The largest quantity whose margin plus fee fits ``budget`` and the skew cap (0 if none)."""
    direction = 1 if side == "long" else -1
    hi = min(MAX_QTY, max(cap - direction * skew, 0))
    lo = 0
    while lo < hi:  # the cost grows with the quantity: binary search
        mid = (lo + hi + 1) // 2
        if quote(index, skew, depth, side, mid, leverage, fee_bps).cost <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True, slots=True)
class CloseAmounts:
    """Money of closing ``qty`` units of a position at the current state."""

    price: int
    notional: int
    fee: int
    entry_part: int
    released: int
    realised_pnl: int
    payout: int

    @property
    def house_gain(self) -> int:
        """What the house keeps: the released margin minus the payout (fee minus PnL, or all)."""
        return self.released - self.payout


def close_q(side: Side, qty: int) -> int:
    """Signed size of a closing trade: closing a long sells, closing a short buys."""
    return -qty if side == "long" else qty


def close_amounts(
    index: int,
    skew: int,
    depth: int,
    side: Side,
    pos_qty: int,
    entry_notional: int,
    margin_cents: int,
    qty: int,
    fee_bps: int,
) -> CloseAmounts:
    """Close ``qty`` of ``pos_qty`` units; pays ``max(M_part + PnL - fee, 0)``.

    The closed part of the entry notional is rounded against the trader (ceil for a long, whose
    cost basis it is; floor for a short, whose proceeds it is); the margin part is floored.
    A loss beyond the margin part is taken from the margin left on the position (so splitting
    a losing close gains nothing), and only beyond all of it does the house absorb it. Closing
    everything releases exactly what is left.
    """
    q = close_q(side, qty)
    exit_notional = notional(index, skew, depth, q)
    if qty == pos_qty:
        entry_part, margin_part = entry_notional, margin_cents
    else:
        scaled = entry_notional * qty
        entry_part = ceil_div(scaled, pos_qty) if side == "long" else floor_div(scaled, pos_qty)
        margin_part = floor_div(margin_cents * qty, pos_qty)
    pnl = exit_notional - entry_part if side == "long" else entry_part - exit_notional
    f = fee(exit_notional, fee_bps)
    net = margin_part + pnl - f
    if net >= 0:
        payout, released = net, margin_part
    else:
        payout, released = 0, margin_part + min(-net, margin_cents - margin_part)
    return CloseAmounts(
        fill_price(index, skew, depth, q), exit_notional, f, entry_part, released, pnl, payout
    )
