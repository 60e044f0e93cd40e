"""REST routes of trading: instruments, quotes, positions, portfolio and trades."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ftl.errors import Kind, Refused
from ftl.persistence.stores import Stores
from ftl.persistence.trade_scripts import TradingScripts
from ftl.trading import amm, catalog
from ftl.trading.service import Trader, Traders, TradeService
from ftl.web import validate as v

Authenticate = Callable[[Request], Awaitable[Trader]]
MAX_ID = 2**53 - 1
SIDES = ("long", "short")
MAX_FILTER = 100
MAX_PAGE = 200
"""Most items a page of instruments or trades holds (``limit``)."""
"""Longest ``team``/``position`` filter of the instrument list (characters)."""


def trading_routes(
    stores: Stores, scripts: TradingScripts, authenticate: Authenticate, traders: Traders | None = None
) -> list[BaseRoute]:
    service = TradeService(stores, scripts, traders)

    async def list_instruments(request: Request) -> Response:
        await authenticate(request)
        limit = v.query_int(request, "limit", 50, 1, MAX_PAGE) or 50
        after = v.query_int(request, "cursor", 0, 0, MAX_ID) or 0
        team = v.query_text(request, "team", MAX_FILTER)
        position = v.query_text(request, "position", MAX_FILTER)
        items, cursor = await catalog.page(stores, team=team, position=position, limit=limit, after=after)
        return JSONResponse(
            {"items": [i.as_json() for i in items], "next_cursor": None if cursor is None else str(cursor)}
        )

    async def get_instrument(request: Request) -> Response:
        await authenticate(request)
        found = await catalog.get(stores, v.path_id(request))
        if found is None:
            raise Refused(Kind.NOT_FOUND, "unknown_instrument", "no such instrument")
        return JSONResponse(found.as_json())

    async def quote(request: Request) -> Response:
        await authenticate(request)
        found = await catalog.get(stores, v.path_id(request))
        if found is None:
            raise Refused(Kind.NOT_FOUND, "unknown_instrument", "no such instrument")
        side = request.query_params.get("side", "")
        if side not in SIDES:
            raise v.invalid("side", "must be long or short")
        qty = v.query_int(request, "qty", None, 1, amm.MAX_QTY)
        if qty is None:
            raise Refused(Kind.INVALID, "missing_field", "qty is required", extra={"field": "qty"})
        leverage = v.query_int(request, "leverage", 1, amm.MIN_LEVERAGE, amm.MAX_LEVERAGE) or 1
        q = amm.quote(
            found.index_price,
            found.skew,
            found.depth,
            side,  # type: ignore[arg-type]
            qty,
            leverage,
            scripts.config.fee_bps,
        )
        return JSONResponse({"price": q.price, "notional": q.notional, "fee": q.fee, "margin": q.margin})

    async def open_position(request: Request) -> Response:
        trader = await authenticate(request)
        key = v.idempotency_key(request)
        fields = ("instrument_id", "side", "qty", "leverage", "acceptable_price")
        body = await v.json_object(request, fields, fields)
        reply = await service.open(
            trader,
            instrument_id=v.integer(body, "instrument_id", 1, MAX_ID),
            side=v.choice(body, "side", SIDES),
            qty=v.integer(body, "qty", 1, amm.MAX_QTY),
            leverage=v.integer(body, "leverage", amm.MIN_LEVERAGE, amm.MAX_LEVERAGE),
            acceptable_price=v.integer(body, "acceptable_price", 1, amm.MAX_ACCEPTABLE),
            idempotency_key=key,
        )
        return JSONResponse(reply, status_code=201)

    async def close_position(request: Request) -> Response:
        trader = await authenticate(request)
        position_id = v.path_id(request)
        key = v.idempotency_key(request)
        body = await v.json_object(request, ("qty", "acceptable_price"), ("acceptable_price",))
        reply = await service.close(
            trader,
            position_id=position_id,
            qty=v.optional_integer(body, "qty", 1, amm.MAX_QTY),
            acceptable_price=v.integer(body, "acceptable_price", 1, amm.MAX_ACCEPTABLE),
            idempotency_key=key,
        )
        return JSONResponse(reply)

    async def portfolio(request: Request) -> Response:
        trader = await authenticate(request)
        return JSONResponse(await _portfolio(stores, trader, scripts.config.mm_bps))

    async def trades(request: Request) -> Response:
        trader = await authenticate(request)
        limit = v.query_int(request, "limit", 50, 1, MAX_PAGE) or 50
        before = v.query_int(request, "before", MAX_ID, 1, MAX_ID) or MAX_ID
        async with stores.pg.connection() as conn:
            cur = await conn.execute(
                "SELECT id, kind, position_id, instrument_id, side, qty, price, notional, fee, "
                "margin, realised_pnl, payout, leverage, "
                "(extract(epoch FROM created_at) * 1000)::bigint "
                "FROM trades WHERE user_id = %s AND id < %s ORDER BY id DESC LIMIT %s",
                (trader.user_id, before, limit),
            )
            rows = await cur.fetchall()
        names = (
            "id",
            "kind",
            "position_id",
            "instrument_id",
            "side",
            "qty",
            "price",
            "notional",
            "fee",
            "margin",
            "realised_pnl",
            "payout",
            "leverage",
            "ts",
        )
        return JSONResponse({"items": [dict(zip(names, row, strict=True)) for row in rows]})

    return [
        Route("/api/instruments", list_instruments, methods=["GET"]),
        Route("/api/instruments/{id}", get_instrument, methods=["GET"]),
        Route("/api/instruments/{id}/quote", quote, methods=["GET"]),
        Route("/api/positions/open", open_position, methods=["POST"]),
        Route("/api/positions/{id}/close", close_position, methods=["POST"]),
        Route("/api/portfolio", portfolio, methods=["GET"]),
        Route("/api/trades", trades, methods=["GET"]),
    ]


def _int(v: Any, default: int = 0) -> int:
    return default if v is None else int(v)


async def _portfolio(stores: Stores, trader: Trader, mm_bps: int) -> dict[str, Any]:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT id, instrument_id, side, qty, entry_price, entry_notional, margin, leverage, "
            "status FROM cfd_positions WHERE user_id = %s AND status = 'open' ORDER BY id",
            (trader.user_id,),
        )
        rows = await cur.fetchall()
    pipe = stores.redis.pipeline(transaction=False)
    pipe.hmget(stores.keys.wallet(trader.user_id), "available", "locked")
    for row in rows:
        pipe.hmget(stores.keys.position(row[0]), "qty", "entry_notional", "margin", "status")
        pipe.hmget(stores.keys.instrument(row[1]), "index", "skew", "depth")
    hot = await pipe.execute()
    available, locked = _int(hot[0][0]), _int(hot[0][1])
    positions = []
    upnl_total = 0
    for i, row in enumerate(rows):
        pid, iid, side, qty, entry_price, entry_notional, margin, leverage, status = row
        pos_hot, ins_hot = hot[1 + 2 * i], hot[2 + 2 * i]
        if pos_hot[0] is not None:  # Redis is ahead of PostgreSQL
            qty, entry_notional, margin = _int(pos_hot[0]), _int(pos_hot[1]), _int(pos_hot[2])
            status = pos_hot[3].decode() if isinstance(pos_hot[3], bytes) else str(pos_hot[3])
        if status != "open" or ins_hot[0] is None:
            continue
        mark = amm.mark(_int(ins_hot[0]), _int(ins_hot[1]), _int(ins_hot[2], 1))
        upnl = amm.unrealised_pnl(side, qty, entry_notional, mark)
        upnl_total += upnl
        positions.append({
            "id": pid, "instrument_id": iid, "side": side, "qty": qty,
            "entry_price": entry_price, "margin": margin, "leverage": leverage,
            "mark_price": mark, "unrealised_pnl": upnl, "status": status,
            "liquidation_price": amm.liquidation_price(side, qty, entry_notional, margin, mm_bps),
        })  # fmt: skip
    wallet = {"available": available, "locked": locked, "equity": available + locked + upnl_total}
    return {"wallet": wallet, "positions": positions}
