"""The trade hot path: one Lua call, then one PostgreSQL round trip, then the answer."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool

from ftl import logs
from ftl.persistence.hot import ensure_wallet
from ftl.persistence.ledger import persist_trade
from ftl.stores import Stores
from ftl.trading import results as r
from ftl.trading.results import CloseResult, OpenResult, Rejected
from ftl.trading.scripts import TradingScripts
from ftl.web.errors import ApiError

log = logs.get(__name__)

# Rejections that depend on market or wallet state: the same request may succeed later.
_STATE = {r.HALTED, r.INSTRUMENT_CLOSED, r.STALE_INDEX, r.SKEW_CAP, r.SLIPPAGE,
          r.INSUFFICIENT_FUNDS, r.NOT_OPEN}  # fmt: skip
_MISSING = {r.UNKNOWN_INSTRUMENT, r.NOT_FOUND, r.NOT_OWNER}

_MESSAGES = {
    r.HALTED: "trading on this player is halted for a moment (match event)",
    r.INSTRUMENT_CLOSED: "this instrument is closed",
    r.STALE_INDEX: "the price feed for this player is stale; try again shortly",
    r.SKEW_CAP: "this trade would take the market past its position limit",
    r.SLIPPAGE: "the fill price is worse than acceptable_price",
    r.INSUFFICIENT_FUNDS: "not enough available balance for margin and fee",
    r.NOT_OPEN: "this position is not open",
    r.CONFLICT: "this Idempotency-Key was used with another request body",
}


@dataclass(frozen=True, slots=True)
class Trader:
    user_id: int
    district_id: int | None


def rejection(code: str) -> ApiError:
    if code == r.CONFLICT:
        return ApiError(409, "idempotency_conflict", _MESSAGES[code])
    if code in _MISSING:
        what = "instrument" if code == r.UNKNOWN_INSTRUMENT else "position"
        return ApiError(404, "not_found" if what == "position" else "unknown_instrument", f"no such {what}")
    if code in _STATE:
        return ApiError(409, code, _MESSAGES.get(code, code))
    if code == r.RECOVERING:
        return ApiError(
            503,
            "recovering",
            "trading is paused while the hot state is rebuilt after a cache loss; retry shortly",
            headers={"Retry-After": "1"},
        )
    return ApiError(422, code, f"rejected: {code}")


def position_json(result: OpenResult | CloseResult, leverage: int | None = None) -> dict[str, Any]:
    if isinstance(result, OpenResult):
        return {
            "id": result.position_id, "instrument_id": result.instrument_id,
            "side": result.side, "qty": result.qty, "entry_price": result.price,
            "margin": result.margin, "leverage": result.leverage, "status": "open",
        }  # fmt: skip
    return {
        "id": result.position_id, "instrument_id": result.instrument_id, "side": result.side,
        "qty": result.remaining_qty, "status": result.status,
    }  # fmt: skip


def trade_json(result: OpenResult | CloseResult) -> dict[str, Any]:
    kind = "open" if isinstance(result, OpenResult) else result.kind
    out: dict[str, Any] = {
        "id": result.trade_id, "kind": kind, "position_id": result.position_id,
        "instrument_id": result.instrument_id, "side": result.side, "qty": result.qty,
        "price": result.price, "notional": result.notional, "fee": result.fee,
        "margin": result.margin, "ts": result.ts,
    }  # fmt: skip
    if isinstance(result, CloseResult):
        out["realised_pnl"] = result.realised_pnl
        out["payout"] = result.payout
    return out


def wallet_json(result: OpenResult | CloseResult) -> dict[str, int]:
    return {"available": result.available, "locked": result.locked, "equity": result.equity}


class Traders:
    """Who is trading: the user of a verified token and his district (cached per process)."""

    def __init__(self, stores: Stores, limit: int = 200_000) -> None:
        self.stores = stores
        self.limit = limit
        self._districts: dict[int, int | None] = {}

    async def of(self, user_id: int) -> Trader:
        if user_id in self._districts:
            return Trader(user_id, self._districts[user_id])
        async with self.stores.pg.connection() as conn:
            cur = await conn.execute("SELECT district_id FROM users WHERE id = %s", (user_id,))
            row = await cur.fetchone()
        if row is None:
            raise ApiError(401, "unknown_user", "the user of this token does not exist")
        if len(self._districts) >= self.limit:
            self._districts.clear()
        self._districts[user_id] = row[0]
        return Trader(user_id, row[0])


class TradeService:
    """Opens and closes positions for one authenticated trader."""

    def __init__(self, stores: Stores, scripts: TradingScripts) -> None:
        self.stores = stores
        self.scripts = scripts

    async def _persist(self, result: OpenResult | CloseResult, entry: dict[str, str]) -> None:
        """A 2xx means PostgreSQL has the trade; otherwise a 503 that says so."""
        if self.stores.settings.fault_after_lua and not result.replay:
            # Test-only fault hook (refused in production): die between the Lua call and the
            # PostgreSQL write, so the flusher must persist the trade from the outbox.
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            async with self.stores.pg.connection(timeout=2.0) as conn:
                await persist_trade(conn, entry)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            log.warning("trade not yet persisted", trade_id=result.trade_id, error=str(exc))
            raise ApiError(
                503,
                "persist_pending",
                "the trade is done but not yet recorded durably; it will be. Retry with the "
                "same Idempotency-Key to confirm.",
                headers={"Retry-After": "1"},
                extra={"trade_id": result.trade_id},
            ) from None

    async def open(
        self,
        trader: Trader,
        *,
        instrument_id: int,
        side: str,
        qty: int,
        leverage: int,
        acceptable_price: int,
        idempotency_key: str,
    ) -> dict[str, Any]:
        for attempt in range(2):
            result = await self.scripts.open(
                user_id=trader.user_id,
                instrument_id=instrument_id,
                side=side,  # type: ignore[arg-type]
                qty=qty,
                leverage=leverage,
                acceptable_price=acceptable_price,
                idempotency_key=idempotency_key,
                district_id=trader.district_id,
            )
            if isinstance(result, Rejected) and result.code == r.NO_WALLET and attempt == 0:
                await ensure_wallet(self.stores, trader.user_id)
                continue
            break
        if isinstance(result, Rejected):
            raise rejection(result.code)
        await self._persist(result, result.entry)
        return {"position": position_json(result), "trade": trade_json(result), "wallet": wallet_json(result)}

    async def close(
        self,
        trader: Trader,
        *,
        position_id: int,
        qty: int | None,
        acceptable_price: int,
        idempotency_key: str,
    ) -> dict[str, Any]:
        result = await self.scripts.close(
            user_id=trader.user_id,
            position_id=position_id,
            qty=qty,
            acceptable_price=acceptable_price,
            idempotency_key=idempotency_key,
            district_id=trader.district_id,
        )
        if isinstance(result, Rejected):
            raise rejection(result.code)
        await self._persist(result, result.entry)
        return {"position": position_json(result), "trade": trade_json(result), "wallet": wallet_json(result)}
