"""Async client of the Sportmonks Football API v3 livescores endpoints (httpx), with the states
list that says which fixture states are live (fetched once, cached, refreshed daily)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import httpx

from ftl import logs
from ftl.pricing import http
from ftl.pricing.model import HALT_EVENT_TYPES, RATING_TYPE_ID, LiveSnapshot
from ftl.pricing.parse import parse_livescores, parse_pagination
from ftl.pricing.states import REFRESH_S, RETRY_S, MatchState, StateCache, parse_states

log = logs.get(__name__)

WORLD_CUP_LEAGUE_ID = 732
INCLUDE = "lineups.details.type;events;periods"
STATES_PATH = "/states"
MAX_PAGES = 10


class SportmonksClient:
    """Fetches live World Cup fixtures with lineup ratings (type 118), match events (of
    ``event_types``, default ``HALT_EVENT_TYPES``) and periods; whether a fixture is live comes
    from the states list (``state_cache``).

    The token travels in the ``Authorization`` header only; it is never logged nor shown by ``repr``.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        leagues: Collection[int] = (WORLD_CUP_LEAGUE_ID,),
        endpoint: str = "inplay",
        event_types: Collection[int] = HALT_EVENT_TYPES,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        states_refresh_s: float = REFRESH_S,
        states_retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if endpoint not in ("inplay", "latest"):
            raise ValueError("endpoint must be 'inplay' or 'latest'")
        if not event_types:
            raise ValueError("event_types must name at least one event type")
        self.leagues = frozenset(leagues)
        self.event_types = frozenset(event_types)
        self.path = f"/livescores/{endpoint}"
        self.state_cache = StateCache(
            self.states, refresh_s=states_refresh_s, retry_s=states_retry_s, clock=clock
        )
        self._http = http.client(base_url, token, timeout_s, transport)

    def __repr__(self) -> str:
        return f"SportmonksClient(base_url={str(self._http.base_url)!r}, path={self.path!r})"

    def params(self, page: int = 1) -> dict[str, str]:
        filters = [
            f"lineupDetailTypes:{RATING_TYPE_ID}",
            "eventTypes:" + ",".join(str(t) for t in sorted(self.event_types)),
        ]
        if self.leagues:
            filters.insert(0, "fixtureLeagues:" + ",".join(str(x) for x in sorted(self.leagues)))
        params = {"include": INCLUDE, "filters": ";".join(filters)}
        if page > 1:
            params["page"] = str(page)
        return params

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        return await http.get_json(self._http, path, params)

    async def states(self) -> list[MatchState]:
        """Every page of ``GET /states``. Raises a ``FeedError`` subclass."""
        out: list[MatchState] = []
        page = 1
        while True:
            body = await self._get(STATES_PATH, {"page": str(page)} if page > 1 else {})
            out.extend(parse_states(body))
            pagination = parse_pagination(body.get("pagination"))
            if pagination is None or not pagination.has_more or page >= MAX_PAGES:
                return out
            page += 1

    async def livescores(self) -> LiveSnapshot:
        """One poll: every page of live fixtures, parsed. Raises a ``FeedError`` subclass."""
        registry = await self.state_cache.get()  # never raises: the fallback ids serve meanwhile
        leagues = self.leagues or None
        snapshot = parse_livescores(await self._get(self.path, self.params(1)), leagues, registry)
        pages = 1
        while snapshot.pagination is not None and snapshot.pagination.has_more and pages < MAX_PAGES:
            pages += 1
            more = parse_livescores(await self._get(self.path, self.params(pages)), leagues, registry)
            snapshot = LiveSnapshot(
                fixtures=snapshot.fixtures + more.fixtures,
                rate_limit=more.rate_limit or snapshot.rate_limit,
                pagination=more.pagination,
                timezone=snapshot.timezone,
                bad_values=snapshot.bad_values + more.bad_values,
            )
        return snapshot

    async def fetch(self) -> LiveSnapshot:
        return await self.livescores()

    async def aclose(self) -> None:
        await self._http.aclose()
