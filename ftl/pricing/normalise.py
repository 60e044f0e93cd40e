"""Rating → index price (pure, no I/O): a catch-up at a rate per second, capped per second and per
poll, halts on match events, stale snapshots ignored. docs/pricing.md states the rule.

The target of a player is ``B · exp(k (r - r0))`` for his latest rating ``r`` (bounded to
``min_cents..max_cents``). Every poll, every rated player's index closes the fraction
``1 - 2^(-dt/h)`` of the gap to his target (``dt``: seconds since the previous poll, ``h``: the
half-life), by at most ``max_move_bp_per_s · dt`` and ``max_move_bp_per_poll`` of the index. So
the price path depends on the ratings and the time, not on how many small steps a rating took to
arrive; a player who stops getting ratings (substituted, full time) converges to his last one and
then stays put.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ftl import limits
from ftl.pricing.model import HALT_EVENT_TYPES, Fixture, IndexChange, LiveSnapshot

BP = 10_000  # basis points in one


@dataclass(frozen=True, slots=True)
class NormaliserConfig:
    """Parameters of the rule documented in docs/pricing.md."""

    neutral_rating: float = 6.5  # r0: the rating at which a player is worth his base price
    sensitivity: float = 0.25  # k: log-price change per rating point
    half_life_s: float = 3.0  # h: the gap to the target halves every h seconds
    max_move_bp_per_s: int = 300  # cap: 3 % of the index per second...
    max_move_bp_per_poll: int = 800  # ...and 8 % per poll, however long the poll took
    first_step_s: float = 2.0  # dt of the first poll (no previous one)
    min_cents: int = limits.MIN_PRICE
    max_cents: int = limits.MAX_PRICE  # index_update.lua accepts 1..MAX_PRICE
    halt_ms: int = 8_000  # how long a goal, red card, penalty, VAR decision halts the fixture
    halt_event_types: frozenset[int] = HALT_EVENT_TYPES
    post_match_bound: float = 0.5
    """A rating revised after the fixture stopped being live moves the price without a halt only
    if it changed by at most this many points; a larger revision halts the player first."""

    def __post_init__(self) -> None:
        if self.half_life_s <= 0 or self.first_step_s < 0:
            raise ValueError("half_life_s must be > 0 and first_step_s >= 0")
        if self.max_move_bp_per_s < 1 or self.max_move_bp_per_poll < 1:
            raise ValueError("the caps must be >= 1 basis point")
        if not 1 <= self.min_cents <= self.max_cents:
            raise ValueError("need 1 <= min_cents <= max_cents")
        if self.sensitivity < 0 or self.halt_ms < 0 or self.post_match_bound < 0:
            raise ValueError("sensitivity, halt_ms and post_match_bound must be >= 0")


def target_cents(base_cents: int, rating: float, cfg: NormaliserConfig) -> int:
    """The price a rating points at: base · exp(k (r - r0)), rounded to a cent, within bounds."""
    raw = round(base_cents * math.exp(cfg.sensitivity * (rating - cfg.neutral_rating)))
    return min(max(raw, cfg.min_cents), cfg.max_cents)


def max_move(price_cents: int, dt_s: float, cfg: NormaliserConfig) -> int:
    """The most one poll ``dt_s`` after the previous one may move ``price_cents`` (cents)."""
    bp = min(cfg.max_move_bp_per_s * dt_s, float(cfg.max_move_bp_per_poll))
    return math.floor(price_cents * bp / BP)


def catch_up(price_cents: int, target: int, dt_s: float, cfg: NormaliserConfig) -> int:
    """The index after one poll: the share ``1 - 2^(-dt/h)`` of the gap closed (at least a cent,
    so it arrives), within :func:`max_move`."""
    gap = target - price_cents
    if gap == 0 or dt_s <= 0:
        return price_cents
    step = math.trunc(gap * (1.0 - 2.0 ** (-dt_s / cfg.half_life_s)))
    if step == 0:
        step = 1 if gap > 0 else -1
    cap = max_move(price_cents, dt_s, cfg)
    return price_cents + int(min(max(step, -cap), cap))


@dataclass(slots=True)
class PlayerState:
    """What the normaliser knows of one player (keyed by Sportmonks player id)."""

    instrument_id: int
    base_cents: int  # the price at the neutral rating (the seed's starting index)
    price_cents: int  # the current index price
    rating: float | None = None  # the last rating applied
    halt_until_ms: int | None = None


@dataclass(slots=True)
class FixtureState:
    """What the normaliser knows of one fixture: how far it got, which events it has seen."""

    progress: tuple[int, int] | None = None
    seen_events: set[int] = field(default_factory=set)


@dataclass(slots=True)
class FeedState:
    """Everything a normaliser resumes from (``ftl/pricing/feed_state.py`` keeps it)."""

    players: dict[int, PlayerState] = field(default_factory=dict)
    fixtures: dict[int, FixtureState] = field(default_factory=dict)
    last_step_ms: int | None = None


@dataclass
class Normaliser:
    """Turns parsed snapshots into index changes. Deterministic: same state, snapshots and times,
    same changes; its whole state is ``players``, ``fixtures`` and ``last_step_ms``, which the
    price feed keeps in PostgreSQL so that a new leader carries on exactly."""

    players: dict[int, PlayerState]
    cfg: NormaliserConfig = field(default_factory=NormaliserConfig)
    fixtures: dict[int, FixtureState] = field(default_factory=dict)
    last_step_ms: int | None = None
    unknown_players: int = 0  # lineup players without an instrument, in the last step
    stale_fixtures: int = 0  # fixtures ignored in the last step: behind one already applied
    dirty_players: set[int] = field(default_factory=set)  # changed since ``clean``
    dirty_fixtures: set[int] = field(default_factory=set)

    @classmethod
    def from_states(
        cls,
        states: Mapping[int, PlayerState],
        cfg: NormaliserConfig | None = None,
        fixtures: Mapping[int, FixtureState] | None = None,
        last_step_ms: int | None = None,
    ) -> Normaliser:
        return cls(
            players=dict(states),
            cfg=cfg or NormaliserConfig(),
            fixtures=dict(fixtures or {}),
            last_step_ms=last_step_ms,
        )

    @classmethod
    def resume(
        cls, state: FeedState | Mapping[int, PlayerState], cfg: NormaliserConfig | None = None
    ) -> Normaliser:
        """A normaliser carrying on from ``state`` (or from bare player states)."""
        if isinstance(state, FeedState):
            return cls.from_states(state.players, cfg, state.fixtures, state.last_step_ms)
        return cls.from_states(state, cfg)

    def prices(self) -> dict[int, int]:
        """Current index price by instrument id."""
        return {s.instrument_id: s.price_cents for s in self.players.values()}

    def clean(self, players: Iterable[int], fixtures: Iterable[int]) -> None:
        """Forget that these were changed (they are stored now)."""
        self.dirty_players.difference_update(players)
        self.dirty_fixtures.difference_update(fixtures)

    def _halt(self, player_ids: Iterable[int], until_ms: int, changed: set[int]) -> None:
        for pid in player_ids:
            state = self.players.get(pid)
            if state is not None:
                state.halt_until_ms = max(until_ms, state.halt_until_ms or 0)
                changed.add(pid)
                self.dirty_players.add(pid)

    def _fresh(self, snapshot: LiveSnapshot) -> list[Fixture]:
        """The fixtures of ``snapshot`` not behind what was already applied (a lagging cache may
        serve an older snapshot: it must not move prices back)."""
        fresh = []
        for fixture in snapshot.fixtures:
            known = self.fixtures.get(fixture.id)
            applied = known.progress if known is not None else None
            if applied is not None and fixture.progress is not None and fixture.progress < applied:
                self.stale_fixtures += 1
                continue
            fresh.append(fixture)
        return fresh

    def _events(self, fixture: Fixture, now_ms: int, changed: set[int]) -> None:
        """Record the fixture's new events; a new halting event of a live fixture halts its
        players. Events present the first time a fixture is seen are history: no halt."""
        known = self.fixtures.get(fixture.id)
        first_sight = known is None
        if known is None:
            known = self.fixtures[fixture.id] = FixtureState()
            self.dirty_fixtures.add(fixture.id)
        if fixture.progress is not None and fixture.progress != known.progress:
            known.progress = fixture.progress
            self.dirty_fixtures.add(fixture.id)
        halt = False
        for event in fixture.events:
            if event.id in known.seen_events:
                continue
            known.seen_events.add(event.id)
            self.dirty_fixtures.add(fixture.id)
            if not first_sight and fixture.live and event.type_id in self.cfg.halt_event_types:
                halt = True
        if halt and self.cfg.halt_ms > 0:
            self._halt((p.player_id for p in fixture.players), now_ms + self.cfg.halt_ms, changed)

    def _ratings(self, fixtures: list[Fixture]) -> dict[int, tuple[float, bool]]:
        """One rating per player per poll, with whether it comes from a live fixture: the entry of
        the fixture he is live in, else his first one (a player listed twice moves once)."""
        chosen: dict[int, tuple[float, bool]] = {}
        for fixture in fixtures:
            for p in fixture.players:
                if p.rating is None:
                    continue
                if p.player_id not in chosen or (fixture.live and not chosen[p.player_id][1]):
                    chosen[p.player_id] = (p.rating, fixture.live)
        return chosen

    def step(self, snapshot: LiveSnapshot, now_ms: int) -> list[IndexChange]:
        """Apply one snapshot at ``now_ms``; return the changes, sorted by instrument id.

        A player changes when his index moves (towards the target of his latest rating), when a
        halt starts or ends for him. Players without a rating keep their price.
        """
        cfg = self.cfg
        previous = self.last_step_ms
        dt_s = cfg.first_step_s if previous is None else max(now_ms - previous, 0) / 1000
        changed: set[int] = set()
        repriced: set[int] = set()
        self.stale_fixtures = 0
        fixtures = self._fresh(snapshot)
        for fixture in fixtures:
            self._events(fixture, now_ms, changed)
        unknown = 0
        for pid, (rating, live) in self._ratings(fixtures).items():
            state = self.players.get(pid)
            if state is None:
                unknown += 1
                continue
            if rating == state.rating:
                continue
            last = state.rating
            if (
                not live
                and last is not None
                and abs(rating - last) > cfg.post_match_bound
                and cfg.halt_ms > 0
            ):
                self._halt((pid,), now_ms + cfg.halt_ms, changed)  # a big late revision
            state.rating = rating
            self.dirty_players.add(pid)
            changed.add(pid)
        for pid, state in self.players.items():  # one pass: halts that ran out, then the catch-up
            if state.halt_until_ms is not None and state.halt_until_ms <= now_ms:
                state.halt_until_ms = None
                changed.add(pid)
                self.dirty_players.add(pid)
            if state.rating is not None:
                target = target_cents(state.base_cents, state.rating, cfg)
            elif not cfg.min_cents <= state.price_cents <= cfg.max_cents:
                target = min(max(state.price_cents, cfg.min_cents), cfg.max_cents)
            else:
                continue
            new = catch_up(state.price_cents, target, dt_s, cfg)
            if new != state.price_cents:
                state.price_cents = new
                repriced.add(pid)
                changed.add(pid)
                self.dirty_players.add(pid)
        self.last_step_ms = now_ms
        self.unknown_players = unknown
        out = [
            IndexChange(
                s.instrument_id, pid, s.price_cents, s.rating, now_ms, s.halt_until_ms, pid in repriced
            )
            for pid in changed
            for s in (self.players[pid],)
        ]
        out.sort(key=lambda c: c.instrument_id)
        return out
