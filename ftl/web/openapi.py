"""The OpenAPI 3.1 document of the REST API (``/api/openapi.json``), generated: one row per
endpoint naming its declared types (``ftl/web/bodies.py``, ``ftl/web/replies.py``), whose JSON
Schemas msgspec derives from the same declarations the decoder validates against."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from ftl.persistence.trade_scripts import MAX_IDEMPOTENCY_KEY
from ftl.web import bodies as b
from ftl.web import replies as out

REF = "#/components/schemas/{name}"
TRADE_ERRORS = (
    "halted", "idempotency_conflict", "outcome_unknown", "not_confirmed", "database_unavailable",
    "recovering", "missing_idempotency_key", "invalid_idempotency_key", "malformed_json",
    "unknown_field", "missing_field", "duplicate_key", "invalid_field", "out_of_range",
    "unsupported_media_type",
)  # fmt: skip


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    reply: type[msgspec.Struct] | None
    status: int = 200
    auth: bool = True
    query: type[msgspec.Struct] | None = None
    body: type[msgspec.Struct] | None = None
    path_id: bool = False
    idempotent: bool = False
    """Takes an ``Idempotency-Key`` header."""
    codes: tuple[str, ...] = ()
    """Error codes of its 4xx replies (the document's description)."""


ENDPOINTS = (
    Endpoint("post", "/api/auth/google", "Sign in with a Google ID token", out.Tokens, auth=False,
             body=b.GoogleLogin, codes=("invalid_token", "token_expired", "wrong_audience", "rate_limited")),
    Endpoint("post", "/api/auth/refresh", "Rotate a refresh token for a new pair", out.Tokens, auth=False,
             body=b.RefreshToken, codes=("token_reused", "token_revoked", "wrong_token_type")),
    Endpoint("post", "/api/auth/logout", "Revoke a refresh token's family", None, 204, auth=False,
             body=b.RefreshToken, codes=("invalid_token",)),
    Endpoint("post", "/api/auth/dev", "Dev login (404 when FTL_ENV=production)", out.Tokens, auth=False,
             body=b.DevLogin, codes=("not_found", "rate_limited", "invalid_field")),
    Endpoint("get", "/api/me", "The caller and his wallet", out.Me, codes=("missing_token", "unknown_user")),
    Endpoint("get", "/api/config", "Client configuration of the web page", out.ClientConfig, auth=False),
    Endpoint("get", "/api/instruments", "Players, filtered and paginated", out.InstrumentPage,
             query=b.InstrumentsQuery, codes=("invalid_field", "out_of_range")),
    Endpoint("get", "/api/instruments/{id}", "One player", out.Instrument, path_id=True,
             codes=("unknown_instrument",)),
    Endpoint("get", "/api/instruments/{id}/quote", "What opening a position would cost now", out.Quote,
             path_id=True, query=b.QuoteQuery,
             codes=("unknown_instrument", "missing_field", "invalid_field", "out_of_range")),
    Endpoint("get", "/api/instruments/{id}/ticks", "Index price history", out.TickPage, path_id=True,
             query=b.TicksQuery, codes=("invalid_field", "out_of_range")),
    Endpoint("post", "/api/positions/open", "Open a long or short CFD position", out.TradeReply, 201,
             body=b.OpenPosition, idempotent=True,
             codes=("slippage", "insufficient_funds", "skew_cap", "stale_index", "instrument_closed",
                    "unknown_instrument", *TRADE_ERRORS)),
    Endpoint("post", "/api/positions/{id}/close", "Close a position in whole or in part", out.TradeReply,
             path_id=True, body=b.ClosePosition, idempotent=True,
             codes=("not_found", "slippage", "not_open", "qty_exceeds_position", *TRADE_ERRORS)),
    Endpoint("get", "/api/portfolio", "Wallet and open positions with unrealised PnL", out.Portfolio),
    Endpoint("get", "/api/trades", "The caller's trades, newest first", out.TradePage, query=b.TradesQuery,
             codes=("invalid_field", "out_of_range")),
    Endpoint("get", "/api/leaderboard", "Ranking by equity, overall or per district", out.Leaderboard,
             query=b.LeaderboardQuery, codes=("invalid_field", "out_of_range", "no_district")),
)  # fmt: skip

ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": b.MAX_ID},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    # printable ASCII, no space at either end (HTTP strips them)
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY,
        "pattern": "^[!-~]([ -~]*[!-~])?$",
    },
    "description": "same key + same body returns the first answer; another body: 409",
}


def _types() -> list[type[msgspec.Struct]]:
    found: list[type[msgspec.Struct]] = [out.Error]
    for e in ENDPOINTS:
        found += [t for t in (e.reply, e.body, e.query) if t is not None]
    return list(dict.fromkeys(found))


def _ref(kind: type[msgspec.Struct]) -> dict[str, str]:
    return {"$ref": REF.format(name=kind.__name__)}


def _parameters(e: Endpoint, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [ID] if e.path_id else []
    if e.query is not None:
        declared = schemas[e.query.__name__]
        required = set(declared.get("required", ()))
        for name, declared_schema in declared["properties"].items():
            schema = _not_null(declared_schema)  # a query string has no null: absent instead
            schema.pop("default", None)
            description = schema.pop("description", None)
            param = {"name": name, "in": "query", "required": name in required, "schema": schema}
            if description:
                param["description"] = description
            params.append(param)
    if e.idempotent:
        params.append(IDEMPOTENCY_KEY)
    return params


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    options = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
    return dict(options[0] if len(options) == 1 else schema)


@cache
def document() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(_types(), ref_template=REF)
    error = {"application/json": {"schema": _ref(out.Error)}}
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        ok: dict[str, Any] = {"description": "success"}
        if e.reply is not None:
            ok["content"] = {"application/json": {"schema": _ref(e.reply)}}
        op: dict[str, Any] = {
            "summary": e.summary,
            "parameters": _parameters(e, schemas),
            "responses": {
                str(e.status): ok,
                "4XX": {"description": "error; codes include " + ", ".join(e.codes or ("see docs",)),
                        "content": error},
                "503": {
                    "description": "a store is unavailable or being rebuilt (database_unavailable, "
                    "cache_unavailable, recovering; trades also outcome_unknown, not_confirmed): "
                    "retry after Retry-After seconds",
                    "headers": {"Retry-After": {"schema": {"type": "string"}}},
                    "content": error,
                },
            },
        }  # fmt: skip
        if e.auth:
            op["security"] = [{"bearer": []}]
        if e.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(e.body)}}}
        paths.setdefault(e.path, {})[e.method] = op
    query_types = {e.query.__name__ for e in ENDPOINTS if e.query is not None}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "FTL API",
            "version": "1",
            "description": 'Money and prices are integer cents. Errors: {"error": {"code", "message"}}.',
        },
        "components": {
            "schemas": {k: v for k, v in schemas.items() if k not in query_types},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "paths": paths,
    }
