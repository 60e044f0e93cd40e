"""The trading limits, declared once: the AMM, the request validators, the OpenAPI document and
(as the generated Lua include ``limits``, see ``ftl/persistence/scripts.py``) the trade scripts
all read them from here. Every one keeps Lua's integer arithmetic below 2^53."""

from __future__ import annotations

MAX_QTY = 100_000
"""Largest quantity of one order (units)."""
MAX_PRICE = 100_000
"""Largest index price (cents, i.e. 1,000.00 credits)."""
MIN_PRICE = 100
"""Smallest index price the price feed sets and a seed may start at (cents, 1.00 credit)."""
MAX_DEPTH = 100_000
"""Largest depth ``S`` of an instrument (units); the skew cap is below it."""
MAX_SKEW = 10**15
"""Largest |skew| a close, a liquidation or an index update accepts (opens need |skew| < depth).

Skew is Σ open long - Σ open short and closes are not capped, so it may pass the depth; beyond
this the hash is broken (it would take 10^10 open positions of the largest size)."""
MAX_ACCEPTABLE = 1_000_000_000
"""Largest acceptable price a request may carry (cents); fills never exceed 2 x MAX_PRICE."""
MAX_FEE_BPS = 1_000
"""Largest fee (10 %), in basis points of the notional."""
MAX_MM_BPS = 10_000
"""Largest maintenance margin (100 %), in basis points of the position's value at mark."""
MIN_LEVERAGE = 1
MAX_LEVERAGE = 5

LUA_NAMES = (
    "MAX_QTY", "MAX_PRICE", "MAX_DEPTH", "MAX_SKEW", "MAX_ACCEPTABLE", "MAX_FEE_BPS",
    "MAX_MM_BPS", "MIN_LEVERAGE", "MAX_LEVERAGE",
)  # fmt: skip


def lua_source() -> str:
    """The Lua include ``limits``: each limit as a ``local`` of the same name."""
    lines = ["-- limits (generated from ftl/limits.py by the script loader: do not copy these numbers)"]
    lines += [f"local {name} = {globals()[name]}" for name in LUA_NAMES]
    return "\n".join(lines)
