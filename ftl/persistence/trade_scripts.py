"""Typed async wrappers of the trade scripts: callers never build KEYS or ARGV by hand."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ftl.persistence.keys import Keys
from ftl.persistence.scripts import ArgT, KeyT, Scripts
from ftl.persistence.trade_replies import (
    NOT_FOUND,
    CloseResult,
    IndexResult,
    OpenResult,
    Rejected,
    Side,
    close_result,
    open_result,
    parse_fields,
)

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
USED_KEYS_TTL_MS = 7 * 24 * 3600 * 1000
"""How long a user's used-keys set lives after his last trade (then it is loaded again)."""
MAX_IDEMPOTENCY_KEY = 200


def key_hash(key: str) -> int:
    """The 31-bit hash of an idempotency key in the user's used-keys set (position_open.lua
    KEYS[12]): the first 31 bits of its SHA-1. A collision only costs a PostgreSQL look-up."""
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class TradingConfig:
    """Trading parameters passed to every script call."""

    fee_bps: int = 10
    """Default fee in basis points (an instrument's field ``fee_bps`` overrides it)."""
    max_index_age_ms: int = 0
    """Reject trades when the index is older than this; 0 turns the check off."""
    mm_bps: int = 500
    """Maintenance margin in basis points of the position's value at mark."""
    idempotency_ttl_ms: int = IDEMPOTENCY_TTL_MS
    used_keys_ttl_ms: int = USED_KEYS_TTL_MS
    """How long a user's used-keys set lives after his last trade (then it is loaded again)."""


def _district(district_id: int | None) -> str:
    return "" if district_id is None else str(district_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"idempotency key must have 1..{MAX_IDEMPOTENCY_KEY} characters")


class TradingScripts:
    """One method per trade script (``position_open``, ``position_close``, ...)."""

    def __init__(
        self,
        scripts: Scripts,
        keys: Keys,
        config: TradingConfig | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.scripts = scripts
        self.keys = keys
        self.config = config or TradingConfig()
        self.clock = clock

    async def _call(self, name: str, keys: Sequence[KeyT], args: Sequence[ArgT], client: Any) -> list[Any]:
        reply = await self.scripts.call(name, keys, args, client=client)
        return list(reply)

    def _trade_keys(
        self,
        instrument_id: int,
        user_id: int,
        idempotency_key: str,
        position: int | str,
        district_id: int | None,
    ) -> list[str]:
        """KEYS of position_open.lua and position_close.lua (same order in both headers)."""
        k = self.keys
        return [
            k.instrument(instrument_id), k.wallet(user_id), k.wallet(0),
            k.idempotency(user_id, idempotency_key), k.seq, k.position(position), k.outbox,
            k.dirty, k.leaderboard_overall, self._district_key(district_id), k.boot_marker,
            k.used_keys(user_id),
        ]  # fmt: skip

    def _district_key(self, district_id: int | None) -> str:
        if district_id is None:
            return self.keys.leaderboard_overall  # unused by the script
        return self.keys.leaderboard_district(district_id)

    async def open(
        self,
        *,
        user_id: int,
        instrument_id: int,
        side: Side,
        qty: int,
        leverage: int,
        acceptable_price: int,
        idempotency_key: str,
        district_id: int | None = None,
        ledger_checked: bool = False,
        now: int | None = None,
        client: Any = None,
    ) -> OpenResult | Rejected:
        """Open a position (``position_open.lua``). ``ledger_checked``: PostgreSQL holds no trade
        of this key (asked after a ``key_used`` rejection)."""
        _check_key(idempotency_key)
        k = self.keys
        cfg = self.config
        reply = await self._call(
            "position_open",
            self._trade_keys(instrument_id, user_id, idempotency_key, "", district_id),
            [
                user_id,
                instrument_id,
                side,
                qty,
                leverage,
                acceptable_price,
                idempotency_key,
                self.clock() if now is None else now,
                _district(district_id),
                cfg.fee_bps,
                cfg.max_index_age_ms,
                cfg.idempotency_ttl_ms,
                k.price_channel(instrument_id),
                key_hash(idempotency_key),
                "1" if ledger_checked else "0",
                cfg.used_keys_ttl_ms,
            ],
            client,
        )
        if _text(reply[0]) != "ok":
            return Rejected(_text(reply[1]))
        return open_result(_text(reply[1]) == "1", reply[2:])

    async def position_instrument(self, position_id: int, client: Any = None) -> tuple[int, int]:
        """The owner and the instrument of a position, (0, 0) if it does not exist.

        Both never change, so reading them before a script is safe.
        """
        target = client if client is not None else self.scripts.client
        user, instrument = await target.hmget(self.keys.position(position_id), "user", "instrument")
        if user is None or instrument is None:
            return 0, 0
        return int(user), int(instrument)

    async def close(
        self,
        *,
        user_id: int,
        position_id: int,
        acceptable_price: int,
        idempotency_key: str,
        qty: int | None = None,
        instrument_id: int | None = None,
        district_id: int | None = None,
        ledger_checked: bool = False,
        now: int | None = None,
        client: Any = None,
    ) -> CloseResult | Rejected:
        """Close ``qty`` units (all when None) of a position (``position_close.lua``).

        Without ``instrument_id`` the position's instrument is read first (one round trip).
        """
        _check_key(idempotency_key)
        if instrument_id is None:
            _, instrument_id = await self.position_instrument(position_id, client)
            if instrument_id == 0:
                instrument_id = 1  # the script answers not_found
        k = self.keys
        cfg = self.config
        reply = await self._call(
            "position_close",
            self._trade_keys(instrument_id, user_id, idempotency_key, position_id, district_id),
            [
                user_id,
                position_id,
                instrument_id,
                0 if qty is None else qty,
                acceptable_price,
                idempotency_key,
                self.clock() if now is None else now,
                _district(district_id),
                cfg.fee_bps,
                cfg.max_index_age_ms,
                cfg.idempotency_ttl_ms,
                k.price_channel(instrument_id),
                key_hash(idempotency_key),
                "1" if ledger_checked else "0",
                cfg.used_keys_ttl_ms,
            ],
            client,
        )
        if _text(reply[0]) != "ok":
            return Rejected(_text(reply[1]))
        return close_result(_text(reply[1]) == "1", reply[2:])

    async def liquidate(
        self,
        *,
        position_id: int,
        user_id: int,
        instrument_id: int,
        district_id: int | None = None,
        now: int | None = None,
        client: Any = None,
    ) -> CloseResult | Rejected:
        """Liquidate a whole position if its equity is below maintenance (``position_liquidate.lua``)."""
        k = self.keys
        cfg = self.config
        reply = await self._call(
            "position_liquidate",
            [
                k.instrument(instrument_id),
                k.wallet(user_id),
                k.wallet(0),
                k.seq,
                k.position(position_id),
                k.outbox,
                k.dirty,
                k.leaderboard_overall,
                self._district_key(district_id),
                k.boot_marker,
            ],
            [
                user_id,
                position_id,
                instrument_id,
                self.clock() if now is None else now,
                _district(district_id),
                cfg.fee_bps,
                cfg.max_index_age_ms,
                cfg.mm_bps,
                k.price_channel(instrument_id),
            ],
            client,
        )
        if _text(reply[0]) != "ok":
            return Rejected(_text(reply[1]))
        return close_result(False, reply[2:])

    async def liquidate_position(
        self, position_id: int, *, now: int | None = None, client: Any = None
    ) -> CloseResult | Rejected:
        """Liquidate knowing only the position id (for the sweeper): reads its owner, instrument
        and the owner's district first (they never change under a running trade)."""
        user, instrument = await self.position_instrument(position_id, client)
        if user == 0:
            return Rejected(NOT_FOUND)
        target = client if client is not None else self.scripts.client
        district = await target.hget(self.keys.wallet(user), "district")
        district_id = int(district) if district else None
        return await self.liquidate(
            position_id=position_id,
            user_id=user,
            instrument_id=instrument,
            district_id=district_id,
            now=now,
            client=client,
        )

    async def load_used_keys(
        self, user_id: int, epoch: str, keys: Sequence[str], client: Any = None
    ) -> int | None:
        """Fill the user's used-keys set with the hashes of ``keys`` (every idempotency key
        PostgreSQL holds for him, read after the boot marker showed ``epoch``):
        ``used_keys_load.lua``. Returns the set's size, or None when the marker is no longer
        ``epoch`` (Redis is being rebuilt: nothing changed)."""
        reply = await self._call(
            "used_keys_load",
            [self.keys.used_keys(user_id), self.keys.boot_marker],
            [epoch, self.config.used_keys_ttl_ms, *sorted({key_hash(k) for k in keys})],
            client,
        )
        status = _text(reply[0])
        if status == "recovering":
            return None
        if status != "ok":
            raise ValueError(f"used_keys_load: {status}")
        return int(reply[1])

    async def epoch(self, client: Any = None) -> str | None:
        """The boot marker's value: this Redis incarnation's epoch (None while it is rebuilt)."""
        target = client if client is not None else self.scripts.client
        value = await target.get(self.keys.boot_marker)
        return None if value is None else _text(value)

    async def update_index(
        self,
        *,
        instrument_id: int,
        index_price: int | None,
        ts: int | None = None,
        status: str | None = None,
        client: Any = None,
    ) -> IndexResult | Rejected:
        """Set the index price (stamped ``ts``) and/or the status (``index_update.lua``)."""
        k = self.keys
        reply = await self._call(
            "index_update",
            [k.instrument(instrument_id), k.dirty],
            [
                instrument_id,
                "" if index_price is None else index_price,
                (self.clock() if ts is None else ts) if index_price is not None else "",
                status or "",
                k.price_channel(instrument_id),
            ],
            client,
        )
        if _text(reply[0]) != "ok":
            return Rejected(_text(reply[1]))
        result: IndexResult = parse_fields(IndexResult, reply[1:])
        return result
