"""Sportmonks fixture states: which ``state_id`` counts as live, from Sportmonks' own list.

``GET /v3/football/states`` lists every state (``id``, ``state``, ``name``, ``short_name``,
``developer_name``). A state is live when its developer name says the ball is in play
(``INPLAY_*``: 1st half, 2nd half, extra time and its 2nd half, the shoot-out) or the match is in
a break inside it (``HT``, ``BREAK`` before extra time, ``EXTRA_TIME_BREAK``, ``PEN_BREAK``).
Everything else (not started, finished, postponed, suspended, interrupted, ...) is not live.

The list is fetched once and cached (``StateCache``, refreshed daily); until it has been fetched,
or for an id it does not list, the fallback ids ``model.LIVE_STATES`` decide.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ftl import logs
from ftl.pricing.errors import FeedError, MalformedResponse
from ftl.pricing.model import LIVE_STATES

log = logs.get(__name__)

IN_PLAY_PREFIX = "INPLAY_"
# Breaks inside a match: half time, before extra time, between its halves, before penalties.
MATCH_BREAKS = frozenset({"HT", "BREAK", "EXTRA_TIME_BREAK", "PEN_BREAK"})
REFRESH_S = 86_400.0  # the list changes only when Sportmonks adds a state
RETRY_S = 300.0  # after a failed fetch, the fallback (or the previous list) serves this long


def is_live_name(developer_name: str) -> bool:
    """Whether a state's ``developer_name`` is in play or a break inside the match."""
    name = developer_name.strip().upper()
    return name.startswith(IN_PLAY_PREFIX) or name in MATCH_BREAKS


@dataclass(frozen=True, slots=True)
class MatchState:
    """One entry of the states list."""

    id: int
    state: str
    name: str
    short_name: str
    developer_name: str

    @property
    def live(self) -> bool:
        return is_live_name(self.developer_name)


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def parse_states(body: Any) -> list[MatchState]:
    """The states of one page of ``GET /states``. An entry without an integer ``id`` or a
    ``developer_name`` is skipped (its id stays with the fallback); a body without a ``data`` list
    is a ``MalformedResponse``."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise MalformedResponse("states response: missing or not a list: data")
    out: list[MatchState] = []
    for raw in data:
        if not isinstance(raw, dict) or type(raw.get("id")) is not int or not _str(raw, "developer_name"):
            continue
        out.append(
            MatchState(
                raw["id"],
                _str(raw, "state"),
                _str(raw, "name"),
                _str(raw, "short_name"),
                raw["developer_name"],
            )
        )
    return out


class StateRegistry:
    """Live or not, by ``state_id``: the listed states decide by developer name, other ids by
    the fallback set."""

    __slots__ = ("fallback", "states")

    def __init__(self, states: Iterable[MatchState] = (), fallback: frozenset[int] = LIVE_STATES) -> None:
        self.states = {s.id: s for s in states}
        self.fallback = fallback

    @property
    def from_source(self) -> bool:
        """True when built from Sportmonks' list (not only the fallback ids)."""
        return bool(self.states)

    def is_live(self, state_id: int) -> bool:
        state = self.states.get(state_id)
        return state.live if state is not None else state_id in self.fallback

    @property
    def live_ids(self) -> frozenset[int]:
        listed = {i for i, s in self.states.items() if s.live}
        return frozenset(listed | {i for i in self.fallback if i not in self.states})

    def disagreements(self) -> list[int]:
        """Listed ids on which the list and the fallback set differ (the fallback needs an update)."""
        return sorted(i for i, s in self.states.items() if s.live != (i in self.fallback))


FALLBACK = StateRegistry()


class StateCache:
    """The registry from ``fetch`` (all pages of ``GET /states``): fetched at the first ``get``,
    then again every ``refresh_s``. A failed fetch keeps what there is (the previous list, or the
    fallback ids) and is retried after ``retry_s``; it never fails a poll."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[MatchState]]],
        *,
        refresh_s: float = REFRESH_S,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self.clock = clock
        self.registry = FALLBACK
        self.fetched_at: float | None = None
        self.fetches = 0  # attempts, failed ones included
        self.failures = 0  # consecutive failed fetches
        self._next: float | None = None  # None: fetch at the next get()

    async def get(self) -> StateRegistry:
        now = self.clock()
        if self._next is not None and now < self._next:
            return self.registry
        self.fetches += 1
        try:
            states = await self.fetch()
            if not states:
                raise MalformedResponse("states response: no states")
        except FeedError as exc:
            self.failures += 1
            self._next = now + self.retry_s
            log.warning(
                "sportmonks states unavailable",
                kind=exc.kind,
                error=str(exc),
                using="cached list" if self.registry.from_source else "fallback ids",
                retry_in_s=self.retry_s,
            )
            return self.registry
        self.registry = StateRegistry(states)
        self.fetched_at = now
        self.failures = 0
        self._next = now + self.refresh_s
        differ = self.registry.disagreements()
        if differ:
            log.warning("sportmonks states disagree with the fallback ids", state_ids=differ)
        log.info("sportmonks states loaded", states=len(states), live=sorted(self.registry.live_ids))
        return self.registry
