"""Typed results of a Sportmonks livescores response, and the index change the poller emits."""

from __future__ import annotations

from dataclasses import dataclass, field

# Sportmonks fixture states (``state_id``) during which a match is live (in play, or a break inside
# it): the FALLBACK set. The live verdict comes from Sportmonks' states endpoint (ftl/pricing/states.py);
# these ids decide only while that list is unavailable, or for an id it does not list.
# 2 1st half, 3 half time, 4 break before extra time, 6 extra time (1st half), 9 penalty shoot-out,
# 21 extra-time break, 22 2nd half, 23 extra time 2nd half, 25 break before penalties.
LIVE_STATES = frozenset({2, 3, 4, 6, 9, 21, 22, 23, 25})
# Sportmonks event types that make prices jump (halt the fixture's players): 10 VAR decision,
# 14 goal, 15 own goal, 16 penalty scored, 17 penalty missed, 20 red card, 21 second yellow (red),
# 22 shoot-out penalty missed, 23 shoot-out penalty scored. The client's ``eventTypes`` filter is
# built from this set too (an event type the filter leaves out could never halt).
HALT_EVENT_TYPES = frozenset({10, 14, 15, 16, 17, 20, 21, 22, 23})
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
    state_live: bool | None = None
    """The state registry's verdict on ``state_id`` (set by the parser from Sportmonks' states
    list); None: the fallback set ``LIVE_STATES`` decides."""

    @property
    def live(self) -> bool:
        """In play or in a break inside the match (half time, before/within extra time, before
        penalties, the shoot-out)."""
        return self.state_live if self.state_live is not None else self.state_id in LIVE_STATES


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
