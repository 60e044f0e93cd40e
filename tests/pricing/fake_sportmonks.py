"""A scriptable fake of the Sportmonks livescores API: real HTTP on loopback, in a thread.

``/livescores/*`` serves the scripted replies, then ``current``; ``/states`` serves the states list
(``states``, in pages of ``states_per_page``) unless ``states_reply`` overrides it. Both check the
token; anything else is a 404.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.pricing import shape

TOKEN = "test-token-0123456789"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless ``raw``
    raw: bytes | None = None
    delay_s: float = 0.0  # hold the answer this long (a timeout for a client with a shorter one)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


def rate_limited(resets_in_seconds: int) -> Reply:
    body = {
        "message": "Too Many Attempts.",
        "rate_limit": {"resets_in_seconds": resets_in_seconds, "remaining": 0, "requested_entity": "Fixture"},
    }
    return Reply(status=429, body=body)


class FakeSportmonks:
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
        self._closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v3/football"

    def start(self) -> FakeSportmonks:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

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

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
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
        if reply.delay_s and self._closing.wait(reply.delay_s):
            return
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        try:
            req.send_response(reply.status)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(payload)))
            for k, v in reply.headers.items():
                req.send_header(k, v)
            req.end_headers()
            req.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass


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
