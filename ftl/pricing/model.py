"""Typed results of a Sportmonks livescores response, and the index change the poller emits."""

from __future__ import annotations

from dataclasses import dataclass, field

# Sportmonks fixture states (``state_id``) during which a match is live (in play or a break in it).
LIVE_STATES = frozenset({2, 3, 4, 6, 9, 21, 22, 25})
# Sportmonks event types that make prices jump: goal, own goal, penalty scored, penalty missed,
# red card, second yellow (red).
HALT_EVENT_TYPES = frozenset({14, 15, 16, 17, 20, 21})
RATING_TYPE_ID = 118


@dataclass(frozen=True, slots=True)
class RateLimit:
    resets_in_seconds: int
    remaining: int
    requested_entity: str


@dataclass(frozen=True, slots=True)
class Pagination:
    count: int
    per_page: int
    current_page: int
    next_page: str | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class PlayerRating:
    player_id: int
    team_id: int
    rating: float | None  # None: the lineup entry carries no rating (yet)


@dataclass(frozen=True, slots=True)
class MatchEvent:
    id: int
    type_id: int
    player_id: int | None
    minute: int | None


@dataclass(frozen=True, slots=True)
class Fixture:
    id: int
    league_id: int
    state_id: int
    name: str
    players: tuple[PlayerRating, ...]
    events: tuple[MatchEvent, ...]
    progress: tuple[int, int] | None = None
    """How far the match has got: (the current period's sort order, seconds played in it), from
    the ``periods`` include; None when unknown. A snapshot of a fixture with less progress than
    one already applied is stale (a lagging cache) and is ignored."""

    @property
    def live(self) -> bool:
        return self.state_id in LIVE_STATES


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """One parsed livescores response."""

    fixtures: tuple[Fixture, ...]
    rate_limit: RateLimit | None = None
    pagination: Pagination | None = None
    timezone: str | None = field(default=None)
    bad_values: tuple[str, ...] = ()
    """One reason per player value dropped while parsing (``null``, ``not_a_number``,
    ``out_of_range``, ...): counted in ``ftl_pricing_bad_values_total{reason}``; the player keeps
    his price and every other player of the response is priced as usual."""

    @property
    def any_live(self) -> bool:
        return any(f.live for f in self.fixtures)


@dataclass(frozen=True, slots=True)
class IndexChange:
    """A new index price for one instrument: what the poller hands to its ``apply`` callback.

    ``halt_until_ms`` set: the instrument is halted until then (a goal, red card or penalty in its
    fixture); None: the instrument trades normally (a change with None after a halt resumes it).
    ``repriced``: the rating changed (a new price for ``price_ticks``); False for a change that only
    halts or resumes the instrument.
    """

    instrument_id: int
    player_id: int
    index_cents: int
    rating: float | None
    ts_ms: int
    halt_until_ms: int | None = None
    repriced: bool = True

    @property
    def status(self) -> str:
        return "halted" if self.halt_until_ms is not None and self.halt_until_ms > self.ts_ms else "open"
