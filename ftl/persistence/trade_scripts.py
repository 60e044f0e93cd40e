"""The trades for callers: the trade scripts' wrappers under the names the callers use, and the
look-ups around them.

Each script's one wrapper (KEYS, ARGV, reply parsing, the trading config and clock) is in
ftl/persistence/lua_scripts.py; ``TradingScripts`` names them as trades (``open`` is
``position_open``, ...) and adds the sweeper's liquidation by position id and the boot marker.
"""

from __future__ import annotations

from typing import Any

from ftl.persistence.lua_scripts import IDEMPOTENCY_TTL_MS as IDEMPOTENCY_TTL_MS
from ftl.persistence.lua_scripts import MAX_IDEMPOTENCY_KEY as MAX_IDEMPOTENCY_KEY
from ftl.persistence.lua_scripts import USED_KEYS_TTL_MS as USED_KEYS_TTL_MS
from ftl.persistence.lua_scripts import LuaScripts
from ftl.persistence.lua_scripts import TradingConfig as TradingConfig
from ftl.persistence.lua_scripts import key_hash as key_hash
from ftl.persistence.lua_scripts import now_ms as now_ms
from ftl.persistence.trade_replies import NOT_FOUND, CloseResult, Rejected


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class TradingScripts(LuaScripts):
    """The trades (``open``, ``close``, ``liquidate``, ...): the scripts' wrappers, by trade name."""

    open = LuaScripts.position_open
    close = LuaScripts.position_close
    liquidate = LuaScripts.position_liquidate
    update_index = LuaScripts.index_update
    load_used_keys = LuaScripts.used_keys_load

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
        return await self.position_liquidate(
            position_id=position_id,
            user_id=user,
            instrument_id=instrument,
            district_id=district_id,
            now=now,
            client=client,
        )

    async def epoch(self, client: Any = None) -> str | None:
        """The boot marker's value: this Redis incarnation's epoch (None while it is rebuilt)."""
        target = client if client is not None else self.scripts.client
        value = await target.get(self.keys.boot_marker)
        return None if value is None else _text(value)
