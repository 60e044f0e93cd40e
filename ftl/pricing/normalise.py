"""Rating → index price (pure, no I/O): smoothing, a capped move per tick, halts on match events."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ftl.pricing.model import HALT_EVENT_TYPES, IndexChange, LiveSnapshot

BP = 10_000  # basis points in one


@dataclass(frozen=True, slots=True)
class NormaliserConfig:
    """Parameters of the formula documented in docs/pricing.md."""

    neutral_rating: float = 6.5  # r0: the rating at which a player is worth his base price
    sensitivity: float = 0.25  # k: log-price change per rating point
    smoothing: float = 0.3  # a: weight of a new rating in the smoothed rating (0 < a <= 1)
    max_move_bp: int = 200  # cap of one tick's move, basis points of the current price
    min_cents: int = 100
    max_cents: int = 100_000  # index_update.lua accepts 1..100000
    halt_ms: int = 8_000  # how long a goal, red card or penalty halts the fixture's players
    halt_event_types: frozenset[int] = HALT_EVENT_TYPES

    def __post_init__(self) -> None:
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError("smoothing must be in (0, 1]")
        if self.max_move_bp < 1:
            raise ValueError("max_move_bp must be >= 1")
        if not 1 <= self.min_cents <= self.max_cents:
            raise ValueError("need 1 <= min_cents <= max_cents")
        if self.sensitivity < 0 or self.halt_ms < 0:
            raise ValueError("sensitivity and halt_ms must be >= 0")


def smooth(smoothed: float, rating: float, cfg: NormaliserConfig) -> float:
    """Exponential smoothing: s' = s + a (r - s)."""
    return smoothed + cfg.smoothing * (rating - smoothed)


def target_cents(base_cents: int, smoothed: float, cfg: NormaliserConfig) -> int:
    """The price the smoothed rating points at: base · exp(k (s - r0)), rounded to a cent."""
    return round(base_cents * math.exp(cfg.sensitivity * (smoothed - cfg.neutral_rating)))


def capped(price_cents: int, target: int, cfg: NormaliserConfig) -> int:
    """Move from ``price_cents`` towards ``target`` by at most max(1, price·cap) cents, within bounds."""
    cap = max(1, price_cents * cfg.max_move_bp // BP)
    moved = min(max(target, price_cents - cap), price_cents + cap)
    return min(max(moved, cfg.min_cents), cfg.max_cents)


def next_price(price_cents: int, base_cents: int, smoothed: float, cfg: NormaliserConfig) -> int:
    return capped(price_cents, target_cents(base_cents, smoothed, cfg), cfg)


@dataclass(slots=True)
class PlayerState:
    """What the normaliser knows of one player (keyed by Sportmonks player id)."""

    instrument_id: int
    base_cents: int  # the starting index price (squad file): the price at the neutral rating
    price_cents: int  # the current index price
    rating: float | None = None  # the last rating seen
    smoothed: float | None = None  # None: start from the neutral rating (or ``rating`` if known)
    halt_until_ms: int | None = None


@dataclass
class Normaliser:
    """Turns parsed snapshots into index changes. Deterministic: same snapshots, same changes."""

    players: dict[int, PlayerState]
    cfg: NormaliserConfig = field(default_factory=NormaliserConfig)
    seen_events: set[int] = field(default_factory=set)
    known_fixtures: set[int] = field(default_factory=set)
    halted: set[int] = field(default_factory=set)
    unknown_players: int = 0  # lineup players without an instrument, in the last step

    @classmethod
    def from_states(
        cls, states: Mapping[int, PlayerState], cfg: NormaliserConfig | None = None
    ) -> Normaliser:
        return cls(players=dict(states), cfg=cfg or NormaliserConfig())

    def prices(self) -> dict[int, int]:
        """Current index price by instrument id."""
        return {s.instrument_id: s.price_cents for s in self.players.values()}

    def _halt(self, player_ids: Iterable[int], until_ms: int, changed: set[int]) -> None:
        for pid in player_ids:
            state = self.players.get(pid)
            if state is None:
                continue
            state.halt_until_ms = max(until_ms, state.halt_until_ms or 0)
            self.halted.add(pid)
            changed.add(pid)

    def step(self, snapshot: LiveSnapshot, now_ms: int) -> list[IndexChange]:
        """Apply one snapshot at ``now_ms``; return the changes, sorted by instrument id.

        A player changes when his rating differs from the last one seen (new price), when a new
        halting event of his fixture halts him, or when his halt expires (resume). No rating: no
        change. Events already present when a fixture is first seen are history: no halt.
        """
        cfg = self.cfg
        changed: set[int] = set()
        repriced: set[int] = set()
        unknown = 0
        for fixture in snapshot.fixtures:
            first_sight = fixture.id not in self.known_fixtures
            self.known_fixtures.add(fixture.id)
            halt = False
            for event in fixture.events:
                if event.id in self.seen_events:
                    continue
                self.seen_events.add(event.id)
                if not first_sight and fixture.live and event.type_id in cfg.halt_event_types:
                    halt = True
            for p in fixture.players:
                state = self.players.get(p.player_id)
                if state is None:
                    unknown += 1
                    continue
                if p.rating is None or p.rating == state.rating:
                    continue
                start = state.smoothed
                if start is None:
                    start = cfg.neutral_rating if state.rating is None else state.rating
                state.smoothed = smooth(start, p.rating, cfg)
                state.rating = p.rating
                state.price_cents = next_price(state.price_cents, state.base_cents, state.smoothed, cfg)
                changed.add(p.player_id)
                repriced.add(p.player_id)
            if halt and cfg.halt_ms > 0:
                self._halt((p.player_id for p in fixture.players), now_ms + cfg.halt_ms, changed)
        for pid in list(self.halted):
            state = self.players[pid]
            if state.halt_until_ms is not None and state.halt_until_ms <= now_ms:
                state.halt_until_ms = None
                self.halted.discard(pid)
                changed.add(pid)
        self.unknown_players = unknown
        out = []
        for pid in changed:
            s = self.players[pid]
            out.append(
                IndexChange(
                    s.instrument_id, pid, s.price_cents, s.rating, now_ms, s.halt_until_ms, pid in repriced
                )
            )
        out.sort(key=lambda c: c.instrument_id)
        return out
