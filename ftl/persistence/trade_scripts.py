"""The trade scripts for callers: config, clock and look-ups around the typed wrappers.

Each script's one wrapper (KEYS, ARGV, reply parsing) is in ftl/persistence/lua_scripts.py;
``TradingScripts`` adds what a caller should not repeat (the trading config, the clock, the
idempotency key check, reading a position's owner and instrument first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ftl.persistence.keys import Keys
from ftl.persistence.lua_scripts import LuaScripts
from ftl.persistence.lua_scripts import key_hash as key_hash  # re-exported: its home before
from ftl.persistence.scripts import Scripts
from ftl.persistence.trade_replies import NOT_FOUND, CloseResult, IndexResult, OpenResult, Rejected, Side

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
USED_KEYS_TTL_MS = 7 * 24 * 3600 * 1000
"""How long a user's used-keys set lives after his last trade (then it is loaded again)."""
MAX_IDEMPOTENCY_KEY = 200


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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"idempotency key must have 1..{MAX_IDEMPOTENCY_KEY} characters")


class TradingScripts:
    """The trades (``open``, ``close``, ``liquidate``, ...) over the trade scripts' wrappers."""

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
        self.lua = LuaScripts(scripts, keys)

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
        cfg = self.config
        return await self.lua.position_open(
            user_id=user_id,
            instrument_id=instrument_id,
            side=side,
            qty=qty,
            leverage=leverage,
            acceptable_price=acceptable_price,
            idempotency_key=idempotency_key,
            now=self.clock() if now is None else now,
            district_id=district_id,
            fee_bps=cfg.fee_bps,
            max_index_age_ms=cfg.max_index_age_ms,
            idempotency_ttl_ms=cfg.idempotency_ttl_ms,
            ledger_checked=ledger_checked,
            used_keys_ttl_ms=cfg.used_keys_ttl_ms,
            client=client,
        )

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
        cfg = self.config
        return await self.lua.position_close(
            user_id=user_id,
            position_id=position_id,
            instrument_id=instrument_id,
            qty=qty,
            acceptable_price=acceptable_price,
            idempotency_key=idempotency_key,
            now=self.clock() if now is None else now,
            district_id=district_id,
            fee_bps=cfg.fee_bps,
            max_index_age_ms=cfg.max_index_age_ms,
            idempotency_ttl_ms=cfg.idempotency_ttl_ms,
            ledger_checked=ledger_checked,
            used_keys_ttl_ms=cfg.used_keys_ttl_ms,
            client=client,
        )

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
        cfg = self.config
        return await self.lua.position_liquidate(
            position_id=position_id,
            user_id=user_id,
            instrument_id=instrument_id,
            now=self.clock() if now is None else now,
            district_id=district_id,
            fee_bps=cfg.fee_bps,
            max_index_age_ms=cfg.max_index_age_ms,
            mm_bps=cfg.mm_bps,
            client=client,
        )

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
        return await self.lua.used_keys_load(user_id, epoch, keys, self.config.used_keys_ttl_ms, client)

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
        if index_price is not None and ts is None:
            ts = self.clock()
        return await self.lua.index_update(
            instrument_id=instrument_id, index_price=index_price, ts=ts, status=status, client=client
        )
