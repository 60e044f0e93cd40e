"""The baseline a team would otherwise build: open/close positions in PostgreSQL alone.

One transaction per trade, ``SELECT ... FOR UPDATE`` on the wallet and instrument rows (and the
house wallet), the same AMM arithmetic (ftl.trading.amm), the same HTTP stack (starlette on
hypercorn) and the same token check. Run by scripts/bench_trade.py; not part of the product.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ftl.trading import amm

FEE_BPS = 10

_SETUP = """
CREATE SEQUENCE IF NOT EXISTS bench_ids START 1000000000;
CREATE TABLE IF NOT EXISTS bench_idem (user_id bigint, key text, PRIMARY KEY (user_id, key));
"""


def build_app(pool: AsyncConnectionPool[Any], authenticate: Any) -> Starlette:
    async def open_position(request: Request) -> Response:
        user_id = await authenticate(request)
        key = request.headers["idempotency-key"]
        body = await request.json()
        iid, side, qty = int(body["instrument_id"]), str(body["side"]), int(body["qty"])
        leverage, acceptable = int(body["leverage"]), int(body["acceptable_price"])
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO bench_idem VALUES (%s, %s) ON CONFLICT DO NOTHING", (user_id, key)
            )
            if cur.rowcount == 0:
                return JSONResponse({"error": {"code": "duplicate"}}, status_code=409)
            row = await (
                await conn.execute(
                    "SELECT available, locked FROM wallets WHERE user_id = %s FOR UPDATE", (user_id,)
                )
            ).fetchone()
            ins = await (
                await conn.execute(
                    "SELECT index_price, skew, depth, skew_cap, status FROM instruments "
                    "WHERE id = %s FOR UPDATE",
                    (iid,),
                )
            ).fetchone()
            assert row is not None and ins is not None
            available, _locked = row
            index, skew, depth, cap, status = ins
            q = amm.signed_qty(side, qty)  # type: ignore[arg-type]
            if status != "open" or abs(skew + q) > cap:
                return JSONResponse({"error": {"code": "rejected"}}, status_code=409)
            quote = amm.quote(index, skew, depth, side, qty, leverage, FEE_BPS)  # type: ignore[arg-type]
            ok_price = quote.price <= acceptable if side == "long" else quote.price >= acceptable
            if not ok_price or quote.cost > available:
                return JSONResponse({"error": {"code": "rejected"}}, status_code=409)
            ids = await (await conn.execute("SELECT nextval('bench_ids'), nextval('bench_ids')")).fetchone()
            assert ids is not None
            pid, tid = ids
            await conn.execute(
                "INSERT INTO cfd_positions (id, user_id, instrument_id, side, qty, entry_price, "
                "entry_notional, margin, leverage, seq) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (pid, user_id, iid, side, qty, quote.price, quote.notional, quote.margin, leverage, tid),
            )
            await conn.execute(
                "INSERT INTO trades (id, user_id, position_id, instrument_id, kind, side, qty, "
                "price, notional, fee, margin, leverage, index_price, skew_after, "
                "idempotency_key) VALUES (%s,%s,%s,%s,'open',%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    tid,
                    user_id,
                    pid,
                    iid,
                    side,
                    qty,
                    quote.price,
                    quote.notional,
                    quote.fee,
                    quote.margin,
                    leverage,
                    index,
                    skew + q,
                    key,
                ),
            )
            await conn.execute(
                "UPDATE wallets SET available = available - %s, locked = locked + %s, seq = %s "
                "WHERE user_id = %s",
                (quote.cost, quote.margin, tid, user_id),
            )
            await conn.execute("UPDATE instruments SET skew = skew + %s WHERE id = %s", (q, iid))
            await conn.execute(
                "UPDATE wallets SET available = available + %s WHERE user_id = 0", (quote.fee,)
            )
        return JSONResponse({"position": {"id": pid}, "trade": {"id": tid}}, status_code=201)

    async def close_position(request: Request) -> Response:
        user_id = await authenticate(request)
        pid = int(request.path_params["id"])
        key = request.headers["idempotency-key"]
        body = await request.json()
        acceptable = int(body["acceptable_price"])
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO bench_idem VALUES (%s, %s) ON CONFLICT DO NOTHING", (user_id, key)
            )
            if cur.rowcount == 0:
                return JSONResponse({"error": {"code": "duplicate"}}, status_code=409)
            pos = await (
                await conn.execute(
                    "SELECT instrument_id, side, qty, entry_notional, margin, leverage, status "
                    "FROM cfd_positions WHERE id = %s AND user_id = %s FOR UPDATE",
                    (pid, user_id),
                )
            ).fetchone()
            if pos is None or pos[6] != "open":
                return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
            iid, side, qty, entry_notional, margin, leverage, _ = pos
            await conn.execute("SELECT 1 FROM wallets WHERE user_id = %s FOR UPDATE", (user_id,))
            ins = await (
                await conn.execute(
                    "SELECT index_price, skew, depth FROM instruments WHERE id = %s FOR UPDATE", (iid,)
                )
            ).fetchone()
            assert ins is not None
            index, skew, depth = ins
            q = -amm.signed_qty(side, qty)
            price = amm.fill_price(index, skew, depth, q)
            if (side == "long" and price < acceptable) or (side == "short" and price > acceptable):
                return JSONResponse({"error": {"code": "slippage"}}, status_code=409)
            exit_notional = amm.notional(index, skew, depth, q)
            fee = amm.fee(exit_notional, FEE_BPS)
            pnl = exit_notional - entry_notional if side == "long" else entry_notional - exit_notional
            payout = max(margin + pnl - fee, 0)
            ids = await (await conn.execute("SELECT nextval('bench_ids')")).fetchone()
            assert ids is not None
            tid = ids[0]
            await conn.execute(
                "UPDATE cfd_positions SET qty = 0, status = 'closed', realised_pnl = %s, seq = %s, "
                "closed_at = now() WHERE id = %s",
                (pnl, tid, pid),
            )
            await conn.execute(
                "INSERT INTO trades (id, user_id, position_id, instrument_id, kind, side, qty, "
                "price, notional, fee, margin, realised_pnl, payout, leverage, index_price, "
                "skew_after, idempotency_key) "
                "VALUES (%s,%s,%s,%s,'close',%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    tid,
                    user_id,
                    pid,
                    iid,
                    side,
                    qty,
                    price,
                    exit_notional,
                    fee,
                    margin,
                    pnl,
                    payout,
                    leverage,
                    index,
                    skew + q,
                    key,
                ),
            )
            await conn.execute(
                "UPDATE wallets SET available = available + %s, locked = locked - %s, seq = %s "
                "WHERE user_id = %s",
                (payout, margin, tid, user_id),
            )
            await conn.execute("UPDATE instruments SET skew = skew + %s WHERE id = %s", (q, iid))
            await conn.execute(
                "UPDATE wallets SET available = available + %s WHERE user_id = 0", (margin - payout,)
            )
        return JSONResponse({"position": {"id": pid}, "trade": {"id": tid}})

    return Starlette(
        routes=[
            Route("/api/positions/open", open_position, methods=["POST"]),
            Route("/api/positions/{id}/close", close_position, methods=["POST"]),
            Route("/healthz", lambda r: JSONResponse({"status": "ok"})),
        ]
    )


async def serve(database_url: str, port: int) -> None:
    from hypercorn.asyncio import serve as hserve
    from hypercorn.config import Config

    from scripts.bench_auth import authenticator

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_SETUP)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=20, max_size=20, open=False)
    await pool.open(wait=True)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    await hserve(build_app(pool, authenticator()), config)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.database_url, args.port))
