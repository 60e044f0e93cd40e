"""Redis key names, in one place; an optional prefix isolates test runs on a shared server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds every Redis key and channel name FTL uses (DESIGN section 2)."""

    prefix: str = ""

    def instrument(self, instrument_id: int | str) -> str:
        return f"{self.prefix}instrument:{instrument_id}"

    def wallet(self, user_id: int | str) -> str:
        return f"{self.prefix}wallet:{user_id}"

    def position(self, position_id: int | str) -> str:
        return f"{self.prefix}position:{position_id}"

    def idempotency(self, user_id: int | str, key: str) -> str:
        return f"{self.prefix}idem:{user_id}:{key}"

    def used_keys(self, user_id: int | str) -> str:
        """The hashes of the idempotency keys PostgreSQL may hold for a user (lua/used_keys_load.lua)."""
        return f"{self.prefix}usedkeys:{user_id}"

    def price_channel(self, instrument_id: int | str) -> str:
        return f"{self.prefix}price:{instrument_id}"

    @property
    def price_pattern(self) -> str:
        return f"{self.prefix}price:*"

    def leaderboard_district(self, district_id: int | str) -> str:
        return f"{self.prefix}leaderboard:district:{district_id}"

    @property
    def leaderboard_overall(self) -> str:
        return f"{self.prefix}leaderboard:overall"

    @property
    def dirty(self) -> str:
        return f"{self.prefix}dirty"

    @property
    def outbox(self) -> str:
        return f"{self.prefix}outbox:trades"

    @property
    def outbox_dead(self) -> str:
        """Dead letters: outbox entries that could not be written, with the reason."""
        return f"{self.prefix}outbox:dead"

    @property
    def house(self) -> str:
        return f"{self.prefix}house"

    @property
    def seq(self) -> str:
        """Counters for trade and position ids handed out inside Lua."""
        return f"{self.prefix}seq"

    @property
    def boot_marker(self) -> str:
        """Present while Redis holds a complete hot state; missing after a Redis loss."""
        return f"{self.prefix}boot"

    def lock(self, name: str) -> str:
        return f"{self.prefix}lock:{name}"

    def ratelimit(self, scope: str, who: str) -> str:
        return f"{self.prefix}rl:{scope}:{who}"
