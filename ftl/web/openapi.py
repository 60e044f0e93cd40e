"""The OpenAPI 3.1 document of the REST API (``/api/openapi.json``) and a readable page of it."""

from __future__ import annotations

import html
from typing import Any

INT = {"type": "integer"}
CENTS = {"type": "integer", "description": "money in integer cents"}
STR = {"type": "string"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


WALLET = _obj({"available": CENTS, "locked": CENTS, "equity": CENTS})
USER = _obj({"id": INT, "email": STR, "name": STR, "district_id": {"type": ["integer", "null"]}})
TOKENS = _obj(
    {
        "access_token": STR,
        "refresh_token": STR,
        "token_type": {"const": "Bearer"},
        "expires_in": INT,
        "user": USER,
    }
)
INSTRUMENT = _obj(
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
POSITION = _obj(
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
TRADE = _obj(
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
        "ts": INT,
    }
)
TRADE_REPLY = _obj({"position": POSITION, "trade": TRADE, "wallet": WALLET})
ERROR = _obj({"error": _obj({"code": STR, "message": STR}, ["code", "message"])}, ["error"])
IDEM = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": 200},
    "description": "same key + same body returns the first answer; another body: 409",
}


def _q(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


ID = {"name": "id", "in": "path", "required": True, "schema": INT}

# (method, path, summary, auth, params, request schema, (status, response schema), error codes)
ENDPOINTS: list[tuple[str, str, str, bool, list[Any], Any, tuple[int, Any], list[str]]] = [
    (
        "post",
        "/api/auth/google",
        "Sign in with a Google ID token",
        False,
        [],
        _obj({"id_token": STR, "district_id": INT}, ["id_token"]),
        (200, TOKENS),
        ["invalid_token", "token_expired", "wrong_audience", "rate_limited"],
    ),
    (
        "post",
        "/api/auth/refresh",
        "Rotate a refresh token for a new pair",
        False,
        [],
        _obj({"refresh_token": STR}, ["refresh_token"]),
        (200, TOKENS),
        ["token_reused", "token_revoked", "wrong_token_type"],
    ),
    (
        "post",
        "/api/auth/logout",
        "Revoke a refresh token's family",
        False,
        [],
        _obj({"refresh_token": STR}, ["refresh_token"]),
        (204, None),
        ["invalid_token"],
    ),
    (
        "post",
        "/api/auth/dev",
        "Dev login (404 when FTL_ENV=production)",
        False,
        [],
        _obj({"email": STR, "name": STR, "district_id": INT}, ["email"]),
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
        (200, _obj({"id": INT, "email": STR, "name": STR, "district_id": INT, "wallet": WALLET})),
        ["missing_token"],
    ),
    (
        "get",
        "/api/config",
        "Client configuration of the web page",
        False,
        [],
        None,
        (200, _obj({"google_client_id": STR, "dev_login": {"type": "boolean"}})),
        [],
    ),
    (
        "get",
        "/api/instruments",
        "Players, filtered and paginated",
        True,
        [_q("team", STR), _q("position", STR), _q("limit", INT), _q("cursor", STR)],
        None,
        (
            200,
            _obj(
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
        [ID, _q("side", {"enum": ["long", "short"]}, True), _q("qty", INT, True), _q("leverage", INT)],
        None,
        (200, _obj({"price": CENTS, "notional": CENTS, "fee": CENTS, "margin": CENTS})),
        ["unknown_instrument", "invalid_field", "out_of_range"],
    ),
    (
        "get",
        "/api/instruments/{id}/ticks",
        "Index price history",
        True,
        [ID, _q("limit", INT), _q("before", INT)],
        None,
        (
            200,
            _obj(
                {
                    "items": {
                        "type": "array",
                        "items": _obj(
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
        _obj(
            {
                "instrument_id": INT,
                "side": {"enum": ["long", "short"]},
                "qty": {"type": "integer", "minimum": 1, "maximum": 100000},
                "leverage": {"type": "integer", "minimum": 1, "maximum": 5},
                "acceptable_price": CENTS,
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
        _obj({"qty": INT, "acceptable_price": CENTS}, ["acceptable_price"]),
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
            _obj(
                {
                    "wallet": WALLET,
                    "positions": {
                        "type": "array",
                        "items": _obj(
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
        [_q("limit", INT), _q("before", INT)],
        None,
        (200, _obj({"items": {"type": "array", "items": TRADE}})),
        [],
    ),
    (
        "get",
        "/api/leaderboard",
        "Ranking by equity, overall or per district",
        True,
        [_q("scope", {"enum": ["overall", "district"]}), _q("district_id", INT), _q("limit", INT)],
        None,
        (
            200,
            _obj(
                {
                    "entries": {
                        "type": "array",
                        "items": _obj({"rank": INT, "user_id": INT, "name": STR, "equity": CENTS}),
                    },
                    "me": _obj({"rank": {"type": ["integer", "null"]}, "equity": CENTS}),
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


def docs_page() -> str:
    """``/api/docs``: Swagger UI (vendored under ``static/vendor/swagger-ui``, no CDN) on
    ``/api/openapi.json``; without JavaScript, a table of the endpoints."""
    rows = []
    for method, path, summary, auth, _params, _body, (status, _r), codes in ENDPOINTS:
        rows.append(
            f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td>"
            f"<td>{html.escape(summary)}</td><td>{'Bearer' if auth else '-'}</td>"
            f"<td>{status}</td><td>{html.escape(', '.join(codes))}</td></tr>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>FTL API</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        "<link rel=stylesheet href=/static/vendor/swagger-ui/swagger-ui.css></head><body>"
        "<div id=docs></div><noscript><style>body{font-family:system-ui;margin:2rem}td,th"
        "{padding:.3rem .6rem;border-bottom:1px solid #ccc;text-align:left;vertical-align:top}"
        "</style><h1>FTL API</h1><p>Money and prices are integer cents. Errors are "
        '<code>{"error": {"code", "message"}}</code>. Machine-readable: '
        "<a href=/api/openapi.json>/api/openapi.json</a>.</p><table><tr><th>endpoint</th>"
        "<th>does</th><th>auth</th><th>success</th><th>error codes</th></tr>"
        + "".join(rows)
        + "</table></noscript>"
        "<script src=/static/vendor/swagger-ui/swagger-ui-bundle.js></script>"
        "<script src=/static/api-docs.js></script></body></html>"
    )
