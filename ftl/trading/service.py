"""The trade hot path: one Lua call, one group-committed PostgreSQL write.

A 2xx means PostgreSQL has the trade (docs/ledger.md): the write is fenced by the epoch of the
Redis that ran the script and chained after the user's previous trade. When the outcome cannot be
known in time the answer is a 503 that says so; a retry with the same Idempotency-Key then
returns the first trade if it was recorded, and never makes a second one. PostgreSQL is asked
about an idempotency key only when Redis has no record of it but the user's used-keys set says it
may have been used (``key_used``), or when that set has to be loaded (``no_used_keys``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import psycopg
import psycopg_pool

from ftl import logs
from ftl.errors import Kind, Refused
from ftl.persistence import ledger
from ftl.persistence import trade_replies as r
from ftl.persistence.hot import ensure_wallet, sync_district
from ftl.persistence.ledger import Outcome
from ftl.persistence.ledger_writer import LedgerWriter
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import CloseResult, OpenResult, Rejected, close_result, open_result
from ftl.persistence.trade_scripts import TradingScripts
from ftl.trading import idempotency

log = logs.get(__name__)
_Result = TypeVar("_Result", OpenResult, CloseResult)

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


def rejection(code: str) -> Refused:
    if code == r.CONFLICT:
        return Refused(Kind.CONFLICT, "idempotency_conflict", _MESSAGES[code])
    if code in _MISSING:
        what = "instrument" if code == r.UNKNOWN_INSTRUMENT else "position"
        return Refused(
            Kind.NOT_FOUND, "not_found" if what == "position" else "unknown_instrument", f"no such {what}"
        )
    if code in _STATE:
        return Refused(Kind.CONFLICT, code, _MESSAGES.get(code, code))
    if code == r.BAD_QTY:  # the route checked its range: more than the position holds
        return Refused(Kind.CONFLICT, "qty_exceeds_position", "qty is more than the position holds")
    if code in (r.RECOVERING, r.NO_USED_KEYS, r.KEY_USED):
        return Refused(
            Kind.UNAVAILABLE,
            "recovering",
            "trading is paused while the hot state is rebuilt after a cache loss; retry shortly",
            retry_after_s=1,
        )
    return Refused(Kind.INVALID, code, f"rejected: {code}")


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
            raise Refused(Kind.UNAUTHORIZED, "unknown_user", "the user of this token does not exist")
        if len(self._districts) >= self.limit:
            self._districts.clear()
        self._districts[user_id] = row[0]
        return Trader(user_id, row[0])

    async def resync(self, user_id: int) -> Trader:
        """After a ``district_mismatch``: PostgreSQL's district, into the hot wallet (and its
        district board) and into this cache. A login may have set it since it was cached, or
        the wallet hash may predate it."""
        district = await sync_district(self.stores, user_id)
        if user_id not in self._districts and len(self._districts) >= self.limit:
            self._districts.clear()
        self._districts[user_id] = district
        return Trader(user_id, district)


_TRANSIENT = (psycopg.OperationalError, psycopg_pool.PoolTimeout, OSError)


def outcome_unknown(trade_id: int) -> Refused:
    return Refused(
        Kind.UNAVAILABLE,
        "outcome_unknown",
        "the trade ran but could not be confirmed as recorded in time; it may or may not have "
        "been. Retry with the same Idempotency-Key: it returns this trade if it was recorded, "
        "and never makes a second one.",
        retry_after_s=1,
        extra={"trade_id": trade_id},
    )


def not_confirmed(trade_id: int, why: str) -> Refused:
    return Refused(
        Kind.UNAVAILABLE,
        "not_confirmed",
        f"the trade was not confirmed and did not happen ({why}); nothing changed. Retry.",
        retry_after_s=1,
        extra={"trade_id": trade_id},
    )


def _as_result(entry: dict[str, str]) -> OpenResult | CloseResult:
    """The first reply of a recorded trade (its position and wallet figures are today's)."""
    flat: list[Any] = ["mark", entry["price"]]
    for name, value in entry.items():
        flat += [name, value]
    return open_result(True, flat) if entry["kind"] == "open" else close_result(True, flat)


class TradeService:
    """Opens and closes positions for one authenticated trader."""

    def __init__(self, stores: Stores, scripts: TradingScripts, traders: Traders | None = None) -> None:
        self.stores = stores
        self.scripts = scripts
        self.traders = traders or Traders(stores)  # the api's own, so a resync fixes its cache
        s = stores.settings
        self.ledger = LedgerWriter(
            lambda: self.stores.ledger_pg,  # the pool of the moment (a test swaps it)
            stores.keys.prefix,
            max_size=s.ledger_batch_max,
            max_wait_s=s.ledger_batch_wait_ms / 1000,
            concurrency=s.ledger_batches_in_flight,
            timeout_s=min(2.0, max(s.ledger_write_timeout_s, 0.1)),
        )

    async def _first(
        self, user_id: int, key: str, wanted: Callable[[dict[str, str]], str]
    ) -> OpenResult | CloseResult | None:
        """The recorded trade of this key (Redis may have forgotten it): the same body (its hash
        ``wanted(entry)``) gets its reply, another body 409."""
        entry = await self.ledger.recorded(user_id, key)  # unreachable: the edge's 503
        if entry is None:
            return None
        if entry["request_hash"] != wanted(entry):
            raise rejection(r.CONFLICT)
        return _as_result(entry)

    async def _load_used_keys(self, user_id: int) -> None:
        """Fill the user's used-keys set from PostgreSQL. The boot marker is read first: the
        script refuses the load if it changed, so PostgreSQL was read after the rebuild's fence
        of this Redis incarnation and no older write can be missing from it."""
        epoch = await self.scripts.epoch()
        if epoch is not None:
            keys = await self.ledger.used_keys(user_id)  # unreachable: the edge's 503
            if await self.scripts.load_used_keys(user_id, epoch, keys) is not None:
                return
        raise rejection(r.RECOVERING)

    async def _confirm(self, result: OpenResult | CloseResult) -> None:
        """Return once PostgreSQL has the trade; otherwise raise the 503 that says what is known."""
        try:
            row = ledger.params(result.entry)
        except ledger.EntryError as exc:
            log.error("trade entry unparseable", trade_id=result.trade_id, error=str(exc))
            raise outcome_unknown(result.trade_id) from None
        deadline = time.monotonic() + self.stores.settings.ledger_write_timeout_s
        pause = 0.002
        while True:
            try:
                outcome = await self.ledger.write(row)
            except _TRANSIENT as exc:
                outcome = exc
            if isinstance(outcome, Outcome) and outcome.confirmed:
                return
            if outcome is Outcome.FENCED:
                raise not_confirmed(result.trade_id, "the trading cache was rebuilt meanwhile")
            if outcome is Outcome.CONFLICT:
                log.error("idempotency key held by another trade", trade_id=result.trade_id)
                raise rejection(r.CONFLICT)
            if isinstance(outcome, Exception) and not isinstance(outcome, _TRANSIENT):
                log.error("trade refused by the ledger", trade_id=result.trade_id, error=repr(outcome))
                raise outcome_unknown(result.trade_id)
            if outcome is Outcome.COLLISION:
                log.error("trade id collision in the ledger", trade_id=result.trade_id)
                raise outcome_unknown(result.trade_id)
            # GAP (the user's previous trade is on its way) or a transient error: try again.
            if time.monotonic() + pause > deadline:
                log.warning("trade not confirmed in time", trade_id=result.trade_id, last=repr(outcome))
                raise outcome_unknown(result.trade_id)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

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
    ) -> OpenResult | CloseResult:
        """Open a position: the trade script's result once PostgreSQL has the trade (a retry
        with the same key gets the first trade's)."""
        wanted = idempotency.open_hash(trader.user_id, instrument_id, side, qty, leverage, acceptable_price)
        result, recorded = await self._run(
            trader,
            idempotency_key,
            lambda _: wanted,
            lambda t, checked: self.scripts.open(
                user_id=t.user_id,
                instrument_id=instrument_id,
                side=side,  # type: ignore[arg-type]
                qty=qty,
                leverage=leverage,
                acceptable_price=acceptable_price,
                idempotency_key=idempotency_key,
                district_id=t.district_id,
                ledger_checked=checked,
            ),
        )
        if not recorded:
            await self._confirm(result)
        return result

    async def close(
        self,
        trader: Trader,
        *,
        position_id: int,
        qty: int | None,
        acceptable_price: int,
        idempotency_key: str,
    ) -> OpenResult | CloseResult:
        """Close ``qty`` units of a position (None: all); the result once PostgreSQL has it."""
        _, instrument_id = await self.scripts.position_instrument(position_id)

        def wanted(entry: dict[str, str]) -> str:
            # Redis may have forgotten the position (closed long ago): its instrument then comes
            # from the recorded trade, when that trade was on this position.
            iid = instrument_id or (
                int(entry["instrument_id"]) if int(entry["position_id"]) == position_id else 0
            )
            return idempotency.close_hash(trader.user_id, position_id, iid, qty or 0, acceptable_price)

        result, recorded = await self._run(
            trader,
            idempotency_key,
            wanted,
            lambda t, checked: self.scripts.close(
                user_id=t.user_id,
                position_id=position_id,
                qty=qty,
                acceptable_price=acceptable_price,
                idempotency_key=idempotency_key,
                district_id=t.district_id,
                instrument_id=instrument_id or 1,  # 1: the script answers not_found
                ledger_checked=checked,
            ),
        )
        if not recorded:
            await self._confirm(result)
        return result

    async def _run(
        self,
        trader: Trader,
        key: str,
        wanted: Callable[[dict[str, str]], str],
        call: Callable[[Trader, bool], Awaitable[_Result | Rejected]],
    ) -> tuple[_Result, bool]:
        """One trade script call, repeated once per piece of hot state it reports missing or
        stale (a rejection changes no key): ``key_used``, ask PostgreSQL for the key's trade
        (found: its reply, with True: it is recorded already; else call again, checked);
        ``no_used_keys``, load the user's used keys; ``no_wallet``, load the wallet;
        ``district_mismatch``, take PostgreSQL's district into the wallet, its board and the
        cache. Else the rejection."""
        await self.ledger.reachable()  # down: the edge's 503 database_unavailable, nothing traded
        repaired: set[str] = set()
        checked = False
        while True:
            result = await call(trader, checked)
            if not isinstance(result, Rejected):
                return result, False
            code = result.code
            if code == r.KEY_USED and not checked:
                first = await self._first(trader.user_id, key, wanted)
                if first is not None:
                    return cast(_Result, first), True
                checked = True
                continue
            if code in repaired or code not in (r.NO_WALLET, r.DISTRICT_MISMATCH, r.NO_USED_KEYS):
                raise rejection(code)
            repaired.add(code)
            if code == r.NO_WALLET:
                await ensure_wallet(self.stores, trader.user_id)
            elif code == r.NO_USED_KEYS:
                await self._load_used_keys(trader.user_id)
            else:
                log.info("district resync", user_id=trader.user_id, cached=trader.district_id)
                trader = await self.traders.resync(trader.user_id)
