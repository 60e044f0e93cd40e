"""What a request may carry, declared once: JSON bodies and query strings as msgspec Structs.

The decoder (``ftl/web/decode.py``) validates against these types, its refusals name the field
and say why (error codes ``missing_field``, ``unknown_field``, ``invalid_field``,
``out_of_range``), and the OpenAPI document (``ftl/web/openapi.py``) is generated from them, so
the three cannot disagree. Bounds come from the pure core (``ftl/limits.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ftl import limits
from ftl.pricing import ticks

MAX_ID = 2**53 - 1
"""Largest id (and integer) a request may name: JSON numbers are exact up to 2^53."""
MAX_INT31 = 2**31 - 1
MAX_MS = (
    datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
) // timedelta(milliseconds=1)
"""The last millisecond of year 9999 in epoch ms: the latest timestamp a Python date can hold."""
MAX_FILTER = 100
"""Longest ``team``/``position`` filter of the instrument list (characters)."""
MAX_PAGE = 200
"""Most items a page of instruments or trades holds (``limit``)."""
MAX_TICKS = ticks.MAX_LIMIT
"""Most ticks one page of price history holds (``limit``)."""
MAX_BOARD = 200
"""Most entries one leaderboard page holds (``limit``)."""
MAX_EMAIL = 320
MAX_NAME = 200
MAX_BODY = 16 * 1024
"""Largest JSON body of a trade (bytes)."""
MAX_AUTH_BODY = 128 * 1024
"""Largest JSON body of an auth call: room for an oversized token to reach the token check (and
its specific 401), not much more."""
NO_NUL = "^[^\\u0000]*$"
"""Text the api stores: PostgreSQL refuses NUL. Python's re and ECMA regexes read it alike."""
EMAIL_PATTERN = "^ *[^@\\x00-\\x20\\x7f]+@[^@\\x00-\\x20\\x7f]+ *$"
"""An email address as the dev login takes it: one '@' with no space or control character on
either side (spaces around it are dropped)."""

Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
Side = Literal["long", "short"]
Qty = Annotated[int, Meta(ge=1, le=limits.MAX_QTY)]
Leverage = Annotated[int, Meta(ge=limits.MIN_LEVERAGE, le=limits.MAX_LEVERAGE)]
Price = Annotated[int, Meta(ge=1, le=limits.MAX_ACCEPTABLE, description="acceptable price in integer cents")]
District = Annotated[int, Meta(ge=1, le=MAX_INT31)]
Filter = Annotated[str, Meta(max_length=MAX_FILTER, pattern=NO_NUL)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """A JSON request body: an object with only the declared fields."""


class Query(msgspec.Struct):
    """A query string: unknown parameters are ignored, as browsers and proxies add their own."""


# --- bodies ------------------------------------------------------------------------------


class OpenPosition(Body):
    instrument_id: Id
    side: Side
    qty: Qty
    leverage: Leverage
    acceptable_price: Price


class ClosePosition(Body):
    acceptable_price: Price
    qty: Qty | None = None
    """Units to close; absent or null: the whole position."""


class GoogleLogin(Body):
    id_token: str
    district_id: District | None = None


class DevLogin(Body):
    email: Annotated[str, Meta(max_length=MAX_EMAIL, pattern=EMAIL_PATTERN)]
    name: Annotated[str, Meta(max_length=MAX_NAME, pattern=NO_NUL)] | None = None
    district_id: District | None = None


class RefreshToken(Body):
    refresh_token: str


# --- query strings -----------------------------------------------------------------------


class InstrumentsQuery(Query):
    team: Filter | None = None
    position: Filter | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 50
    cursor: Annotated[int, Meta(ge=0, le=MAX_ID, description="next_cursor of the page before")] = 0


class QuoteQuery(Query):
    side: Side
    qty: Qty
    leverage: Leverage = 1


class TicksQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=MAX_TICKS)] = ticks.DEFAULT_LIMIT
    before: Annotated[int, Meta(ge=1, le=MAX_MS, description="ms since the epoch")] | None = None


class TradesQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 50
    before: Annotated[int, Meta(ge=1, le=MAX_ID, description="the id of the oldest trade seen")] = MAX_ID


class LeaderboardQuery(Query):
    scope: Literal["overall", "district"] | None = None
    district_id: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=MAX_INT31,
                description="the district board (no scope: scope=district); unused with scope=overall",
            ),
        ]
        | None
    ) = None
    limit: Annotated[int, Meta(ge=1, le=MAX_BOARD)] = 50
