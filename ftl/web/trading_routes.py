"""REST routes of trading: instruments, quotes, positions, portfolio and trades."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ftl.errors import Kind, Refused
from ftl.persistence.stores import Stores
from ftl.persistence.trade_scripts import TradingScripts
from ftl.trading import amm, catalog
from ftl.trading.service import Trader, Traders, TradeService
from ftl.web import bodies as b
from ftl.web import decode
from ftl.web import replies as out
from ftl.web.replies import StructResponse
from ftl.web.validate import idempotency_key, path_id

Authenticate = Callable[[Request], Awaitable[Trader]]


def trading_routes(
    stores: Stores, scripts: TradingScripts, authenticate: Authenticate, traders: Traders | None = None
) -> list[BaseRoute]:
    service = TradeService(stores, scripts, traders)

    async def list_instruments(request: Request) -> Response:
        await authenticate(request)
        q = decode.query(request, b.InstrumentsQuery)
        items, cursor = await catalog.page(
            stores, team=q.team or None, position=q.position or None, limit=q.limit, after=q.cursor
        )
        page = out.InstrumentPage(
            [out.convert(i, out.Instrument) for i in items], None if cursor is None else str(cursor)
        )
        return StructResponse(page)

    async def get_instrument(request: Request) -> Response:
        await authenticate(request)
        return StructResponse(out.convert(await _instrument(request), out.Instrument))

    async def _instrument(request: Request) -> catalog.Instrument:
        found = await catalog.get(stores, path_id(request))
        if found is None:
            raise Refused(Kind.NOT_FOUND, "unknown_instrument", "no such instrument")
        return found

    async def quote(request: Request) -> Response:
        await authenticate(request)
        found = await _instrument(request)
        q = decode.query(request, b.QuoteQuery)
        fill = amm.quote(
            found.index_price, found.skew, found.depth, q.side, q.qty, q.leverage, scripts.config.fee_bps
        )
        return StructResponse(out.Quote(fill.price, fill.notional, fill.fee, fill.margin))

    async def open_position(request: Request) -> Response:
        trader = await authenticate(request)
        key = idempotency_key(request)
        body = await decode.body(request, b.OpenPosition)
        result = await service.open(
            trader,
            instrument_id=body.instrument_id,
            side=body.side,
            qty=body.qty,
            leverage=body.leverage,
            acceptable_price=body.acceptable_price,
            idempotency_key=key,
        )
        return StructResponse(out.trade_reply(result), status_code=201)

    async def close_position(request: Request) -> Response:
        trader = await authenticate(request)
        position_id = path_id(request)
        key = idempotency_key(request)
        body = await decode.body(request, b.ClosePosition)
        result = await service.close(
            trader,
            position_id=position_id,
            qty=body.qty,
            acceptable_price=body.acceptable_price,
            idempotency_key=key,
        )
        return StructResponse(out.trade_reply(result))

    async def portfolio(request: Request) -> Response:
        trader = await authenticate(request)
        return StructResponse(await _portfolio(stores, trader, scripts.config.mm_bps))

    async def trades(request: Request) -> Response:
        trader = await authenticate(request)
        q = decode.query(request, b.TradesQuery)
        async with stores.pg.connection() as conn:
            cur = await conn.execute(
                "SELECT id, kind, position_id, instrument_id, side, qty, price, notional, fee, "
                "margin, realised_pnl, payout, leverage, "
                "(extract(epoch FROM created_at) * 1000)::bigint "
                "FROM trades WHERE user_id = %s AND id < %s ORDER BY id DESC LIMIT %s",
                (trader.user_id, q.before, q.limit),
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
        items = [out.convert(dict(zip(names, row, strict=True)), out.Trade) for row in rows]
        return StructResponse(out.TradePage(items))

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


async def _portfolio(stores: Stores, trader: Trader, mm_bps: int) -> out.Portfolio:
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
        positions.append(out.HeldPosition(
            id=pid, instrument_id=iid, side=side, qty=qty, entry_price=entry_price, margin=margin,
            leverage=leverage, status=status, mark_price=mark, unrealised_pnl=upnl,
            liquidation_price=amm.liquidation_price(side, qty, entry_notional, margin, mm_bps),
        ))  # fmt: skip
    wallet = out.Wallet(available, locked, available + locked + upnl_total)
    return out.Portfolio(wallet, positions)
