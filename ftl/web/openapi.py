"""The OpenAPI 3.1 document of the REST API (``/api/openapi.json``): one row per endpoint."""

from __future__ import annotations

from typing import Any

from ftl.trading import amm
from ftl.web.auth_body import EMAIL_PATTERN, MAX_EMAIL
from ftl.web.auth_body import MAX_INT as MAX_DISTRICT_ID
from ftl.web.leaderboard_routes import MAX_DISTRICT
from ftl.web.leaderboard_routes import MAX_LIMIT as MAX_BOARD
from ftl.web.openapi_schemas import (
    CENTS,
    ERROR,
    ID,
    ID_VALUE,
    IDEM,
    INSTRUMENT,
    INT,
    NULLABLE_INT,
    POSITION,
    PRICE,
    QTY,
    STR,
    TOKENS,
    TRADE,
    TRADE_REPLY,
    WALLET,
    integer,
    obj,
    query,
    text,
)
from ftl.web.pricing_routes import MAX_MS, MAX_TICKS
from ftl.web.trading_routes import MAX_FILTER, MAX_ID, MAX_PAGE

# (method, path, summary, auth, params, request schema, (status, response schema), error codes)
ENDPOINTS: list[tuple[str, str, str, bool, list[Any], Any, tuple[int, Any], list[str]]] = [
    (
        "post",
        "/api/auth/google",
        "Sign in with a Google ID token",
        False,
        [],
        obj(
            {"id_token": STR, "district_id": {**integer(1, MAX_DISTRICT_ID), "type": ["integer", "null"]}},
            ["id_token"],
        ),
        (200, TOKENS),
        ["invalid_token", "token_expired", "wrong_audience", "rate_limited"],
    ),
    (
        "post",
        "/api/auth/refresh",
        "Rotate a refresh token for a new pair",
        False,
        [],
        obj({"refresh_token": STR}, ["refresh_token"]),
        (200, TOKENS),
        ["token_reused", "token_revoked", "wrong_token_type"],
    ),
    (
        "post",
        "/api/auth/logout",
        "Revoke a refresh token's family",
        False,
        [],
        obj({"refresh_token": STR}, ["refresh_token"]),
        (204, None),
        ["invalid_token"],
    ),
    (
        "post",
        "/api/auth/dev",
        "Dev login (404 when FTL_ENV=production)",
        False,
        [],
        obj(
            {
                "email": {"type": "string", "maxLength": MAX_EMAIL, "pattern": EMAIL_PATTERN},
                "name": {**text(200), "type": ["string", "null"]},
                "district_id": {**integer(1, MAX_DISTRICT_ID), "type": ["integer", "null"]},
            },
            ["email"],
        ),
        (200, TOKENS),
        ["not_found", "rate_limited"],
    ),
    (
        "get",
        "/api/me",
        "The caller and his wallet",
        True,
        [],
        None,
        (200, obj({"id": INT, "email": STR, "name": STR, "district_id": NULLABLE_INT, "wallet": WALLET})),
        ["missing_token"],
    ),
    (
        "get",
        "/api/config",
        "Client configuration of the web page",
        False,
        [],
        None,
        (200, obj({"google_client_id": {"type": ["string", "null"]}, "dev_login": {"type": "boolean"}})),
        [],
    ),
    (
        "get",
        "/api/instruments",
        "Players, filtered and paginated",
        True,
        [
            query("team", text(MAX_FILTER)),
            query("position", text(MAX_FILTER)),
            query("limit", integer(1, MAX_PAGE)),
            query("cursor", integer(0, MAX_ID, "next_cursor of the page before")),
        ],
        None,
        (
            200,
            obj(
                {"items": {"type": "array", "items": INSTRUMENT}, "next_cursor": {"type": ["string", "null"]}}
            ),
        ),
        ["invalid_field"],
    ),
    (
        "get",
        "/api/instruments/{id}",
        "One player",
        True,
        [ID],
        None,
        (200, INSTRUMENT),
        ["unknown_instrument"],
    ),
    (
        "get",
        "/api/instruments/{id}/quote",
        "What opening a position would cost now",
        True,
        [
            ID,
            query("side", {"enum": ["long", "short"]}, True),
            query("qty", QTY, True),
            query("leverage", integer(amm.MIN_LEVERAGE, amm.MAX_LEVERAGE)),
        ],
        None,
        (200, obj({"price": CENTS, "notional": CENTS, "fee": CENTS, "margin": CENTS})),
        ["unknown_instrument", "invalid_field", "out_of_range"],
    ),
    (
        "get",
        "/api/instruments/{id}/ticks",
        "Index price history",
        True,
        [
            ID,
            query("limit", integer(1, MAX_TICKS)),
            query("before", integer(1, MAX_MS, "ms since the epoch")),
        ],
        None,
        (
            200,
            obj(
                {
                    "items": {
                        "type": "array",
                        "items": obj(
                            {"ts": INT, "index_price": CENTS, "rating": {"type": ["number", "null"]}}
                        ),
                    }
                }
            ),
        ),
        ["out_of_range"],
    ),
    (
        "post",
        "/api/positions/open",
        "Open a long or short CFD position",
        True,
        [IDEM],
        obj(
            {
                "instrument_id": ID_VALUE,
                "side": {"enum": ["long", "short"]},
                "qty": QTY,
                "leverage": integer(amm.MIN_LEVERAGE, amm.MAX_LEVERAGE),
                "acceptable_price": PRICE,
            },
            ["instrument_id", "side", "qty", "leverage", "acceptable_price"],
        ),
        (201, TRADE_REPLY),
        [
            "slippage",
            "insufficient_funds",
            "skew_cap",
            "halted",
            "stale_index",
            "instrument_closed",
            "unknown_instrument",
            "idempotency_conflict",
            "missing_idempotency_key",
            "outcome_unknown",
            "not_confirmed",
            "database_unavailable",
            "recovering",
            "malformed_json",
            "unknown_field",
            "out_of_range",
        ],
    ),
    (
        "post",
        "/api/positions/{id}/close",
        "Close a position in whole or in part",
        True,
        [ID, IDEM],
        obj({"qty": QTY, "acceptable_price": PRICE}, ["acceptable_price"]),
        (200, TRADE_REPLY),
        [
            "not_found",
            "slippage",
            "not_open",
            "halted",
            "idempotency_conflict",
            "outcome_unknown",
            "not_confirmed",
            "database_unavailable",
            "recovering",
        ],
    ),
    (
        "get",
        "/api/portfolio",
        "Wallet and open positions with unrealised PnL",
        True,
        [],
        None,
        (
            200,
            obj(
                {
                    "wallet": WALLET,
                    "positions": {
                        "type": "array",
                        "items": obj(
                            {
                                **POSITION["properties"],
                                "mark_price": CENTS,
                                "unrealised_pnl": CENTS,
                                "liquidation_price": {"type": ["integer", "null"]},
                            }
                        ),
                    },
                }
            ),
        ),
        [],
    ),
    (
        "get",
        "/api/trades",
        "The caller's trades, newest first",
        True,
        [query("limit", integer(1, MAX_PAGE)), query("before", ID_VALUE)],
        None,
        (200, obj({"items": {"type": "array", "items": TRADE}})),
        [],
    ),
    (
        "get",
        "/api/leaderboard",
        "Ranking by equity, overall or per district",
        True,
        [
            query("scope", {"enum": ["overall", "district"]}),
            query(
                "district_id",
                integer(
                    1,
                    MAX_DISTRICT,
                    "the district board (no scope: scope=district); unused with scope=overall",
                ),
            ),
            query("limit", integer(1, MAX_BOARD)),
        ],
        None,
        (
            200,
            obj(
                {
                    "entries": {
                        "type": "array",
                        "items": obj({"rank": INT, "user_id": INT, "name": STR, "equity": CENTS}),
                    },
                    "me": obj({"rank": {"type": ["integer", "null"]}, "equity": CENTS}),
                }
            ),
        ),
        ["invalid_field"],
    ),
]


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, summary, auth, params, body, (status, reply), codes in ENDPOINTS:
        op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": {}}
        if auth:
            op["security"] = [{"bearer": []}]
        if body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        ok: dict[str, Any] = {"description": "success"}
        if reply is not None:
            ok["content"] = {"application/json": {"schema": reply}}
        op["responses"][str(status)] = ok
        op["responses"]["4XX"] = {
            "description": "error; codes include " + ", ".join(codes or ["see docs"]),
            "content": {"application/json": {"schema": ERROR}},
        }
        op["responses"]["503"] = {
            "description": "a store is unavailable or being rebuilt (database_unavailable, "
            "cache_unavailable, recovering; trades also outcome_unknown, not_confirmed): retry "
            "after Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": ERROR}},
        }
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "FTL API",
            "version": "1",
            "description": 'Money and prices are integer cents. Errors: {"error": {"code", "message"}}.',
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        },
        "paths": paths,
    }
