"""Typed replies of the trade scripts (and of the reference model), and the rejection codes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Side = Literal["long", "short"]
"""A position's side (ftl/trading/amm.py prices it)."""

# Rejection codes (machine-readable; a rejection changes no key).
BAD_USER: Final = "bad_user"
BAD_SIDE: Final = "bad_side"
BAD_QTY: Final = "bad_qty"
BAD_LEVERAGE: Final = "bad_leverage"
BAD_PRICE: Final = "bad_price"
BAD_ARGS: Final = "bad_args"
BAD_STATUS: Final = "bad_status"
CONFLICT: Final = "conflict"
UNKNOWN_INSTRUMENT: Final = "unknown_instrument"
INSTRUMENT_BOUNDS: Final = "instrument_bounds"
HALTED: Final = "halted"
INSTRUMENT_CLOSED: Final = "instrument_closed"
STALE_INDEX: Final = "stale_index"
STALE_TICK: Final = "stale_tick"
NO_WALLET: Final = "no_wallet"
DISTRICT_MISMATCH: Final = "district_mismatch"
SKEW_CAP: Final = "skew_cap"
SLIPPAGE: Final = "slippage"
INSUFFICIENT_FUNDS: Final = "insufficient_funds"
NOT_FOUND: Final = "not_found"
NOT_OWNER: Final = "not_owner"
NOT_OPEN: Final = "not_open"
WRONG_INSTRUMENT: Final = "wrong_instrument"
NOT_LIQUIDATABLE: Final = "not_liquidatable"
RECOVERING: Final = "recovering"
# Asks of the trade scripts to the api, never answered to a client (docs/ledger.md): the key may
# be held by a recorded trade (look it up), the user's used-keys set is missing (load it).
KEY_USED: Final = "key_used"
NO_USED_KEYS: Final = "no_used_keys"

CODES: Final = frozenset(
    {
        BAD_USER, BAD_SIDE, BAD_QTY, BAD_LEVERAGE, BAD_PRICE, BAD_ARGS, BAD_STATUS, CONFLICT,
        UNKNOWN_INSTRUMENT, INSTRUMENT_BOUNDS, HALTED, INSTRUMENT_CLOSED, STALE_INDEX,
        STALE_TICK, NO_WALLET, DISTRICT_MISMATCH, SKEW_CAP, SLIPPAGE, INSUFFICIENT_FUNDS,
        NOT_FOUND, NOT_OWNER, NOT_OPEN, WRONG_INSTRUMENT, NOT_LIQUIDATABLE, RECOVERING,
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rejected:
    """The script refused the request and changed nothing."""

    code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeResult:
    """What every filled trade answers (``replay``: the first reply of this idempotency key, sent
    again): the fill, the wallet and the instrument after it, and the outbox entry."""

    replay: bool
    trade_id: int
    position_id: int
    instrument_id: int
    side: str
    qty: int
    price: int
    notional: int
    fee: int
    margin: int
    available: int
    locked: int
    equity: int
    skew: int
    mark: int
    index: int
    ts: int
    entry: dict[str, str] = field(default_factory=dict)
    """The trade as appended to the outbox stream (the PostgreSQL rows' fields)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenResult(TradeResult):
    """A position opened."""

    leverage: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseResult(TradeResult):
    """A position closed in whole or in part (kind ``close``) or liquidated (``liquidation``);
    ``margin`` is the margin released."""

    kind: str
    remaining_qty: int
    status: str
    realised_pnl: int
    payout: int


@dataclass(frozen=True, slots=True)
class IndexResult:
    """The instrument after an index update (no money moved)."""

    instrument_id: int
    index: int
    index_ts: int
    status: str
    skew: int
    mark: int
    pseq: int


_TEXT_FIELDS: Final = frozenset({"side", "kind", "status"})


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_decode(flat[i]): _decode(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def parse_fields(cls: type[Any], pairs: list[Any]) -> Any:
    """Build ``cls`` from a flat ``[name, value, ...]`` list of strings (a Lua reply)."""
    raw = _pairs(pairs)
    values = {
        f.name: raw[f.name] if f.name in _TEXT_FIELDS else int(raw[f.name]) for f in dataclasses.fields(cls)
    }
    return cls(**values)


def _common(flat: list[Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The outbox entry of a trade reply ``['mark', m, field, value, ...]`` and the shared fields."""
    entry = _pairs(flat)
    mark = int(entry.pop("mark"))
    available, locked = int(entry["w_available"]), int(entry["w_locked"])
    common: dict[str, Any] = {
        "trade_id": int(entry["trade_id"]),
        "position_id": int(entry["position_id"]),
        "instrument_id": int(entry["instrument_id"]),
        "side": entry["side"],
        "qty": int(entry["qty"]),
        "price": int(entry["price"]),
        "notional": int(entry["notional"]),
        "fee": int(entry["fee"]),
        "margin": int(entry["margin"]),
        "available": available,
        "locked": locked,
        "equity": available + locked,
        "skew": int(entry["skew_after"]),
        "mark": mark,
        "index": int(entry["index_price"]),
        "ts": int(entry["ts"]),
    }
    return entry, common


def open_result(replay: bool, flat: list[Any]) -> OpenResult:
    """An :class:`OpenResult` from the reply of ``position_open.lua`` (after ``'ok', replay``)."""
    entry, common = _common(flat)
    return OpenResult(replay=replay, leverage=int(entry["leverage"]), entry=entry, **common)


def close_result(replay: bool, flat: list[Any]) -> CloseResult:
    """A :class:`CloseResult` from the reply of ``position_close.lua`` or ``position_liquidate.lua``."""
    entry, common = _common(flat)
    return CloseResult(
        replay=replay,
        kind=entry["kind"],
        remaining_qty=int(entry["pos_qty"]),
        status=entry["pos_status"],
        realised_pnl=int(entry["realised_pnl"]),
        payout=int(entry["payout"]),
        entry=entry,
        **common,
    )
