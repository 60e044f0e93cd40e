"""A scriptable fake of the Sportmonks livescores API: real HTTP on loopback, in a thread.

``/livescores/*`` serves the scripted replies, then ``current``; ``/states`` serves the states list
(``states``, in pages of ``states_per_page``) unless ``states_reply`` overrides it. Both check the
token; anything else is a 404.
"""

from __future__ import annotations

import threading
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.pricing import shape
from tests.pricing.loopback import LoopbackServer, Reply, Seen

TOKEN = "test-token-0123456789"


def rate_limited(resets_in_seconds: int) -> Reply:
    body = {
        "message": "Too Many Attempts.",
        "rate_limit": {"resets_in_seconds": resets_in_seconds, "remaining": 0, "requested_entity": "Fixture"},
    }
    return Reply(status=429, body=body)


class FakeSportmonks(LoopbackServer):
    """Serves scripted replies in order, then ``current`` (a livescores body) for every livescores
    request; the states list for ``/states`` (the script is not consumed by it)."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.script: deque[Reply] = deque()
        self.current: Any = shape.envelope([])
        self.states: list[dict[str, Any]] = shape.catalogue()
        self.states_per_page = 25
        self.states_reply: Reply | None = None  # set: served for /states instead of the list
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.origin}/v3/football"

    def start(self) -> FakeSportmonks:
        self.start_serving()
        return self

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def set_current(self, body: Any) -> None:
        with self._lock:
            self.current = body

    def livescores_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path.startswith("/v3/football/livescores/")]

    def states_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path == "/v3/football/states"]

    def _states(self, query: dict[str, list[str]]) -> Reply:
        with self._lock:
            if self.states_reply is not None:
                return self.states_reply
            page = query.get("page", ["1"])[0]
            number = int(page) if page.isdigit() and int(page) > 0 else 1
            return Reply(body=shape.states_page(self.states, page=number, per_page=self.states_per_page))

    def _next(self) -> Reply:
        with self._lock:
            if self.script:
                return self.script.popleft()
            return Reply(body=self.current)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        with self._lock:
            self.requests.append(Seen(parts.path, parse_qs(parts.query), dict(req.headers.items())))
        if req.headers.get("Authorization") != self.token:
            reply = Reply(status=401, body={"message": "Unauthenticated."})
        elif parts.path == "/v3/football/states":
            reply = self._states(parse_qs(parts.query))
        elif not parts.path.startswith("/v3/football/livescores/"):
            reply = Reply(status=404, body={"message": "Not found"})
        else:
            reply = self._next()
        self.send(req, reply)


class Match:
    """A live fixture whose players' ratings tests set and drift; builds Sportmonks JSON."""

    def __init__(self, fixture_id: int, home: list[int], away: list[int], *, league_id: int = 732) -> None:
        self.fixture_id = fixture_id
        self.league_id = league_id
        self.state_id = 2
        self.teams = {pid: 100 for pid in home} | {pid: 200 for pid in away}
        self.ratings: dict[int, float | None] = dict.fromkeys(self.teams)
        self.events: list[dict[str, Any]] = []
        self.without_details: set[int] = set()
        self.periods: list[dict[str, Any]] | None = None  # the ``periods`` include, when set

    def rate(self, **ratings: float) -> None:
        """``m.rate(p1=6.9)``: keys are ``p<player id>``."""
        for key, value in ratings.items():
            self.ratings[int(key[1:])] = value

    def goal(self, player_id: int, minute: int, type_id: int = 14) -> None:
        self.events.append(
            shape.event(
                self.fixture_id * 100 + len(self.events) + 1,
                self.fixture_id,
                type_id,
                team_id=self.teams.get(player_id, 100),
                player_id=player_id,
                minute=minute,
            )
        )

    def json(self) -> dict[str, Any]:
        lineups = [
            shape.lineup(
                self.fixture_id,
                pid,
                team,
                name=f"Player {pid}",
                rating=self.ratings[pid],
                details=pid not in self.without_details,
            )
            for pid, team in self.teams.items()
        ]
        return shape.fixture(
            self.fixture_id,
            league_id=self.league_id,
            state_id=self.state_id,
            name=f"Fixture {self.fixture_id}",
            lineups=lineups,
            events=self.events,
            periods=self.periods,
        )


def body(*matches: Match, remaining: int = 2999, resets_in_seconds: int = 3600) -> dict[str, Any]:
    return shape.envelope(
        [m.json() for m in matches], remaining=remaining, resets_in_seconds=resets_in_seconds
    )
