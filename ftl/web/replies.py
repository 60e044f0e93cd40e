"""What the api answers, declared once: reply bodies as msgspec Structs.

Routes build these and :class:`StructResponse` encodes them; the OpenAPI document is generated
from the same types, and schemathesis checks every reply against it. Money is integer cents.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar, cast

import msgspec
from msgspec import Meta
from starlette.background import BackgroundTask
from starlette.responses import Response

from ftl.persistence.trade_replies import CloseResult, OpenResult

Cents = Annotated[int, Meta(description="money in integer cents")]
Side = Literal["long", "short"]
_T = TypeVar("_T")


class Reply(msgspec.Struct):
    """A reply body (every field always present, null where it has no value)."""


class Partial(msgspec.Struct, omit_defaults=True):
    """A reply body whose optional fields are left out when they do not apply."""


class Wallet(Reply):
    available: Cents
    locked: Cents
    equity: Cents


class User(Reply):
    id: int
    email: str
    name: str
    district_id: int | None


class Tokens(Reply):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    user: User


class Me(Reply):
    id: int
    email: str
    name: str
    district_id: int | None
    wallet: Wallet


class ClientConfig(Reply):
    google_client_id: str | None
    dev_login: bool


class Instrument(Reply):
    id: int
    player_id: int
    name: str
    team: str
    position: str
    price: Cents
    index_price: Cents
    skew: int
    status: Literal["open", "halted", "closed"]


class InstrumentPage(Reply):
    items: list[Instrument]
    next_cursor: Annotated[str | None, Meta(description="cursor of the next page; null: the last")]


class Quote(Reply):
    price: Cents
    notional: Cents
    fee: Cents
    margin: Cents


class Tick(Reply):
    ts: Annotated[int, Meta(description="ms since the epoch")]
    index_price: Cents
    rating: float | None


class TickPage(Reply):
    items: list[Tick]


class Position(Partial):
    """A position as a trade left it; a close reply carries no entry, margin or leverage."""

    id: int
    instrument_id: int
    side: Side
    qty: int
    status: str
    entry_price: Cents | None = None
    margin: Cents | None = None
    leverage: int | None = None


class Trade(Partial):
    """One fill. Closes and liquidations also carry realised PnL and payout; the history also
    the position's leverage."""

    id: int
    kind: Literal["open", "close", "liquidation"]
    position_id: int
    instrument_id: int
    side: Side
    qty: int
    price: Cents
    notional: Cents
    fee: Cents
    margin: Cents
    ts: Annotated[int, Meta(description="ms since the epoch")]
    realised_pnl: Cents | None = None
    payout: Cents | None = None
    leverage: int | None = None


class TradeReply(Reply):
    position: Position
    trade: Trade
    wallet: Wallet


class TradePage(Reply):
    items: list[Trade]


class HeldPosition(Reply):
    """An open position in the portfolio, valued at the mark."""

    id: int
    instrument_id: int
    side: Side
    qty: int
    entry_price: Cents
    margin: Cents
    leverage: int
    status: str
    mark_price: Cents
    unrealised_pnl: Cents
    liquidation_price: Cents | None


class Portfolio(Reply):
    wallet: Wallet
    positions: list[HeldPosition]


class BoardEntry(Reply):
    rank: int
    user_id: int
    name: str
    equity: Cents


class MyRank(Reply):
    rank: int | None
    equity: Cents


class Leaderboard(Reply):
    entries: list[BoardEntry]
    me: MyRank


class ErrorDetail(Partial):
    code: Annotated[str, Meta(description="machine-readable, e.g. out_of_range")]
    message: str
    field: Annotated[str | None, Meta(description="the request field at fault (422)")] = None
    trade_id: Annotated[int | None, Meta(description="the trade concerned (503)")] = None


class Error(Reply):
    error: ErrorDetail


def trade_reply(result: OpenResult | CloseResult) -> TradeReply:
    """The reply to an open or a close, from what the trade script answered."""
    wallet = Wallet(result.available, result.locked, result.equity)
    side = cast(Side, result.side)
    if isinstance(result, OpenResult):
        position = Position(
            result.position_id, result.instrument_id, side, result.qty, "open",
            entry_price=result.price, margin=result.margin, leverage=result.leverage,
        )  # fmt: skip
        trade = Trade(
            result.trade_id, "open", result.position_id, result.instrument_id, side,
            result.qty, result.price, result.notional, result.fee, result.margin, result.ts,
        )  # fmt: skip
        return TradeReply(position, trade, wallet)
    position = Position(result.position_id, result.instrument_id, side, result.remaining_qty, result.status)
    trade = Trade(
        result.trade_id, result.kind, result.position_id, result.instrument_id, side,  # type: ignore[arg-type]
        result.qty, result.price, result.notional, result.fee, result.margin, result.ts,
        realised_pnl=result.realised_pnl, payout=result.payout,
    )  # fmt: skip
    return TradeReply(position, trade, wallet)


def convert(value: Any, kind: type[_T]) -> _T:
    """``value`` (a dict or an object with the fields as attributes) as the reply ``kind``."""
    return msgspec.convert(value, kind, from_attributes=True)


class StructResponse(Response):
    """A JSON reply encoded from its declared type by msgspec."""

    media_type = "application/json"

    def __init__(
        self,
        content: msgspec.Struct,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, None, background)

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)
