"""The one typed wrapper of every ``lua/*.lua`` script, and the only place that runs them by name.

``LuaScripts`` has one method per script, named as the script's file: it builds KEYS and ARGV in
the order of the script's header (the trading config and the clock supply the parameters every
trade passes), runs it (``Scripts.call``) and parses the reply into a typed value. Everything
else (``TradingScripts``, ``LeaderLock``, ``hot``, ``recovery``, the seed) calls these methods;
tests/persistence/test_lua_wrappers.py fails if a script has no wrapper here, or two, or if any
other module of ``ftl/`` runs a script by its name.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import msgpack

from ftl.persistence.keys import Keys
from ftl.persistence.scripts import ArgT, Scripts
from ftl.persistence.trade_replies import (
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


RebuildMode = Literal["hashes", "wallets", "idempotency"]
"""How ``rebuild_load.lua`` writes a chunk of rows (see its header)."""
DistrictSync = Literal["missing", "same", "moved"]
"""What ``wallet_district.lua`` found: no hot wallet, the district already set, or moved."""


def key_hash(key: str) -> int:
    """The 31-bit hash of an idempotency key in the user's used-keys set (position_open.lua
    KEYS[12]): the first 31 bits of its SHA-1. A collision only costs a PostgreSQL look-up."""
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _district(district_id: int | None) -> str:
    return "" if district_id is None else str(district_id)


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"idempotency key must have 1..{MAX_IDEMPOTENCY_KEY} characters")


class LuaScripts:
    """One method per Lua script (``position_open`` runs ``lua/position_open.lua``, ...)."""

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

    def _district_key(self, district_id: int | None) -> str:
        if district_id is None:
            return self.keys.leaderboard_overall  # unused by the script
        return self.keys.leaderboard_district(district_id)

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

    async def position_open(
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
        """``position_open.lua``: open a position at the AMM fill price (the first reply again
        for a repeated key and body); ``Rejected`` when nothing changed. ``ledger_checked``:
        PostgreSQL holds no trade of this key (asked after a ``key_used`` rejection)."""
        _check_key(idempotency_key)
        cfg = self.config
        reply = await self.scripts.call(
            "position_open",
            self._trade_keys(instrument_id, user_id, idempotency_key, "", district_id),
            [
                user_id, instrument_id, side, qty, leverage, acceptable_price, idempotency_key,
                self.clock() if now is None else now, _district(district_id), cfg.fee_bps,
                cfg.max_index_age_ms, cfg.idempotency_ttl_ms, self.keys.price_channel(instrument_id),
                key_hash(idempotency_key), "1" if ledger_checked else "0", cfg.used_keys_ttl_ms,
            ],
            client=client,
        )  # fmt: skip
        reply = list(reply)
        if _text(reply[0]) != "ok":
            return Rejected(_text(reply[1]))
        return open_result(_text(reply[1]) == "1", reply[2:])

    async def position_close(
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
        """``position_close.lua``: close ``qty`` units (all when None) of a position at the AMM
        fill price; ``Rejected`` when nothing changed. Without ``instrument_id`` the position's
        instrument is read first (one round trip)."""
        _check_key(idempotency_key)
        if instrument_id is None:
            _, instrument_id = await self.position_instrument(position_id, client)
            instrument_id = instrument_id or 1  # no such position: the script answers not_found
        cfg = self.config
        reply = await self.scripts.call(
            "position_close",
            self._trade_keys(instrument_id, user_id, idempotency_key, position_id, district_id),
            [
                user_id, position_id, instrument_id, 0 if qty is None else qty, acceptable_price,
                idempotency_key, self.clock() if now is None else now, _district(district_id),
                cfg.fee_bps, cfg.max_index_age_ms, cfg.idempotency_ttl_ms,
                self.keys.price_channel(instrument_id), key_hash(idempotency_key),
                "1" if ledger_checked else "0", cfg.used_keys_ttl_ms,
            ],
            client=client,
        )  # fmt: skip
        reply = list(reply)
        if _text(reply[0]) != "ok":
            return Rejected(_text(reply[1]))
        return close_result(_text(reply[1]) == "1", reply[2:])

    async def position_liquidate(
        self,
        *,
        position_id: int,
        user_id: int,
        instrument_id: int,
        district_id: int | None = None,
        now: int | None = None,
        client: Any = None,
    ) -> CloseResult | Rejected:
        """``position_liquidate.lua``: close a whole position whose equity fell below the
        maintenance margin; ``Rejected`` (e.g. ``not_liquidatable``) otherwise."""
        k, cfg = self.keys, self.config
        reply = await self.scripts.call(
            "position_liquidate",
            [
                k.instrument(instrument_id), k.wallet(user_id), k.wallet(0), k.seq,
                k.position(position_id), k.outbox, k.dirty, k.leaderboard_overall,
                self._district_key(district_id), k.boot_marker,
            ],
            [
                user_id, position_id, instrument_id, self.clock() if now is None else now,
                _district(district_id), cfg.fee_bps, cfg.max_index_age_ms, cfg.mm_bps,
                k.price_channel(instrument_id),
            ],
            client=client,
        )  # fmt: skip
        reply = list(reply)
        if _text(reply[0]) != "ok":
            return Rejected(_text(reply[1]))
        return close_result(False, reply[2:])

    async def index_update(
        self,
        *,
        instrument_id: int,
        index_price: int | None,
        ts: int | None = None,
        status: str | None = None,
        client: Any = None,
    ) -> IndexResult | Rejected:
        """``index_update.lua``: set the index price stamped ``ts`` (None: now; an index price
        of None keeps the index, a status-only change) and/or the status (None: unchanged)."""
        if index_price is not None and ts is None:
            ts = self.clock()
        k = self.keys
        reply = await self.scripts.call(
            "index_update",
            [k.instrument(instrument_id), k.dirty],
            [
                instrument_id,
                "" if index_price is None else index_price,
                "" if index_price is None or ts is None else ts,
                status or "",
                k.price_channel(instrument_id),
            ],
            client=client,
        )
        reply = list(reply)
        if _text(reply[0]) != "ok":
            return Rejected(_text(reply[1]))
        result: IndexResult = parse_fields(IndexResult, reply[1:])
        return result

    async def used_keys_load(
        self, user_id: int, epoch: str, keys: Sequence[str], client: Any = None
    ) -> int | None:
        """``used_keys_load.lua``: fill the user's used-keys set with the hashes of ``keys``
        (read from PostgreSQL after the boot marker showed ``epoch``). Returns the set's size,
        or None when the marker is no longer ``epoch`` (nothing changed)."""
        reply = await self.scripts.call(
            "used_keys_load",
            [self.keys.used_keys(user_id), self.keys.boot_marker],
            [epoch, self.config.used_keys_ttl_ms, *sorted({key_hash(k) for k in keys})],
            client=client,
        )
        reply = list(reply)
        status = _text(reply[0])
        if status == "recovering":
            return None
        if status != "ok":
            raise ValueError(f"used_keys_load: {status}")
        return int(reply[1])

    async def position_instrument(self, position_id: int, client: Any = None) -> tuple[int, int]:
        """The owner and the instrument of a position, (0, 0) if it does not exist (a plain
        read: both never change, so reading them before a script is safe)."""
        target = client if client is not None else self.scripts.client
        user, instrument = await target.hmget(self.keys.position(position_id), "user", "instrument")
        if user is None or instrument is None:
            return 0, 0
        return int(user), int(instrument)

    async def hash_load(self, hashes: Sequence[tuple[str, Sequence[ArgT]]]) -> list[bool]:
        """``hash_load.lua`` for each (key, [field, value, ...]) of ``hashes``, in one round trip:
        True where the hash was missing and is loaded now, False where Redis had it (unchanged)."""
        replies = await self.scripts.call_many("hash_load", [([key], fields) for key, fields in hashes])
        return [int(reply) == 1 for reply in replies]

    async def wallet_district(self, user_id: int, district_id: int | None) -> tuple[DistrictSync, str]:
        """``wallet_district.lua``: give the hot wallet this district and move the user's
        district leaderboard entry with it. Returns ``("missing", "")`` (no hot wallet: nothing
        changed), ``("same", d)`` or ``("moved", old)`` (old: ``""`` for none)."""
        k = self.keys
        reply = await self.scripts.call(
            "wallet_district",
            [k.wallet(user_id), k.leaderboard_overall, k.leaderboard_district("")],
            [user_id, _district(district_id)],
        )
        code, district = (_text(v) for v in reply)
        if code == "bad_user":
            raise ValueError(f"not a user id: {user_id}")
        if code not in ("missing", "same", "moved"):
            raise ValueError(f"wallet_district: {code}")
        return cast(DistrictSync, code), district

    async def leader_lock(self, name: str, token: str, ttl_ms: int) -> bool:
        """``leader_lock.lua``: take the lock ``name`` for ``ttl_ms``, or renew it if ``token``
        holds it. True while ``token`` is the holder."""
        reply = await self.scripts.call("leader_lock", [self.keys.lock(name)], [token, ttl_ms])
        return int(reply) == 1

    async def leader_release(self, name: str, token: str) -> bool:
        """``leader_release.lua``: give up the lock ``name`` if ``token`` still holds it."""
        reply = await self.scripts.call("leader_release", [self.keys.lock(name)], [token])
        return int(reply) == 1

    async def rebuild_load(
        self, mode: RebuildMode, prefix: str, names: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int:
        """``rebuild_load.lua``: write one chunk of PostgreSQL ``rows`` (their columns: an id,
        then ``names``) as hashes ``prefix..id`` (and the leaderboards in mode ``wallets``).
        Returns the number of rows loaded."""
        k = self.keys
        reply = await self.scripts.call(
            "rebuild_load",
            [k.leaderboard_overall, k.leaderboard_district("")],
            [mode, prefix, msgpack.packb(list(names)), msgpack.packb(rows)],
        )
        return int(reply)
