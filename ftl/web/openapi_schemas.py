"""The schemas of the OpenAPI document: bodies, replies, errors and parameters (bounds from the
routes' own constants)."""

from __future__ import annotations

from typing import Any

from ftl.trading import amm
from ftl.web.trading_routes import MAX_ID

# The bounds below are the constants the routes check, imported, not copied.
INT = {"type": "integer"}
CENTS = {"type": "integer", "description": "money in integer cents"}
STR = {"type": "string"}
NULLABLE_INT = {"type": ["integer", "null"]}


def integer(lo: int, hi: int, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi}
    if description:
        out["description"] = description
    return out


def text(max_len: int) -> dict[str, Any]:
    """Text the api stores: no NUL (PostgreSQL refuses it), at most ``max_len`` characters."""
    return {"type": "string", "maxLength": max_len, "pattern": "^[^\\u0000]*$"}


ID_VALUE = integer(1, MAX_ID)
PRICE = integer(1, amm.MAX_ACCEPTABLE, "acceptable price in integer cents")
QTY = integer(1, amm.MAX_QTY)


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


WALLET = obj({"available": CENTS, "locked": CENTS, "equity": CENTS})
USER = obj({"id": INT, "email": STR, "name": STR, "district_id": NULLABLE_INT})
TOKENS = obj(
    {
        "access_token": STR,
        "refresh_token": STR,
        "token_type": {"const": "Bearer"},
        "expires_in": INT,
        "user": USER,
    }
)
INSTRUMENT = obj(
    {
        "id": INT,
        "player_id": INT,
        "name": STR,
        "team": STR,
        "position": STR,
        "price": CENTS,
        "index_price": CENTS,
        "skew": INT,
        "status": {"enum": ["open", "halted", "closed"]},
    }
)
POSITION = obj(
    {
        "id": INT,
        "instrument_id": INT,
        "side": {"enum": ["long", "short"]},
        "qty": INT,
        "entry_price": CENTS,
        "margin": CENTS,
        "leverage": INT,
        "status": STR,
    }
)
TRADE = obj(
    {
        "id": INT,
        "kind": {"enum": ["open", "close", "liquidation"]},
        "position_id": INT,
        "instrument_id": INT,
        "side": STR,
        "qty": INT,
        "price": CENTS,
        "notional": CENTS,
        "fee": CENTS,
        "margin": CENTS,
        "realised_pnl": CENTS,
        "payout": CENTS,
        "leverage": INT,
        "ts": INT,
    }
)
TRADE_REPLY = obj({"position": POSITION, "trade": TRADE, "wallet": WALLET})
ERROR = obj(
    {
        "error": obj(
            {
                "code": STR,
                "message": STR,
                "field": {"type": "string", "description": "the request field at fault (422)"},
                "trade_id": {"type": "integer", "description": "the trade concerned (503)"},
            },
            ["code", "message"],
        )
    },
    ["error"],
)
IDEM = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    # printable ASCII, no space at either end (HTTP strips them)
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]([ -~]*[!-~])?$"},
    "description": "same key + same body returns the first answer; another body: 409",
}


def query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


ID = {"name": "id", "in": "path", "required": True, "schema": ID_VALUE}
