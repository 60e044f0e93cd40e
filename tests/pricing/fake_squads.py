"""A fake of the Sportmonks v3 squad endpoints (league, teams by season, squad by season and team)
serving tests/pricing/data/wc2026_squads_sample.json: real HTTP on loopback, in a thread."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.pricing.loopback import LoopbackServer, Reply, Seen

TOKEN = "squads-token-0123456789"
SAMPLE = Path(__file__).parent / "data" / "wc2026_squads_sample.json"
NO_RESULT = (
    "No result(s) found matching your request. Either the query did not return any results or you "
    "don't have access to it via your current subscription."
)
PREFIX = "/v3/football"
_LEAGUE = re.compile(rf"^{PREFIX}/leagues/(\d+)$")
_TEAMS = re.compile(rf"^{PREFIX}/teams/seasons/(\d+)$")
_SQUAD = re.compile(rf"^{PREFIX}/squads/seasons/(\d+)/teams/(\d+)$")


def load_sample() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return body


def rate_limited(resets_in_seconds: int) -> Reply:
    rate = {"resets_in_seconds": resets_in_seconds, "remaining": 0, "requested_entity": "Team"}
    return Reply(status=429, body={"message": "Too Many Attempts.", "rate_limit": rate})


def envelope(entity: str, **body: Any) -> dict[str, Any]:
    return {
        **body,
        "subscription": [{"meta": {"trial_ends_at": None, "ends_at": None, "current_timestamp": 0}}],
        "rate_limit": {"resets_in_seconds": 3600, "remaining": 2999, "requested_entity": entity},
        "timezone": "UTC",
    }


class FakeSquads(LoopbackServer):
    """Answers scripted replies first (``push``), then from the sample, which tests may edit
    (``sample`` under ``lock``, or the helpers). ``page_size`` caps ``per_page`` of the teams list."""

    def __init__(self, token: str = TOKEN, page_size: int = 3) -> None:
        self.token = token
        self.page_size = page_size
        self.sample = load_sample()
        self.script: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.origin}{PREFIX}"

    @property
    def season_id(self) -> int:
        return int(self.sample["season_id"])

    def start(self) -> FakeSquads:
        self.start_serving()
        return self

    def push(self, *replies: Reply) -> None:
        with self.lock:
            self.script.extend(replies)

    def paths(self) -> list[str]:
        with self.lock:
            return [seen.path for seen in self.requests]

    def rename_team(self, team_id: int, name: str) -> None:
        with self.lock:
            for team in self.sample["teams"]:
                if team["id"] == team_id:
                    team["name"] = name

    def remove_player(self, team_id: int, player_id: int) -> None:
        with self.lock:
            squad = self.sample["squads"][str(team_id)]
            squad[:] = [e for e in squad if e["player_id"] != player_id]

    def add_player(self, team_id: int, player: dict[str, Any], position_id: int) -> None:
        """Put ``player`` (a player object) in the squad of ``team_id``."""
        with self.lock:
            self.sample["players"][str(player["id"])] = player
            squad = self.sample["squads"].setdefault(str(team_id), [])
            squad.append(
                {
                    "id": 90_000_000 + len(squad),
                    "player_id": player["id"],
                    "team_id": team_id,
                    "season_id": self.season_id,
                    "has_values": False,
                    "position_id": position_id,
                    "jersey_number": 99,
                }
            )

    def _route(self, path: str, query: dict[str, list[str]]) -> Reply:
        includes = {i.lower() for i in ";".join(query.get("include", [])).split(";") if i}
        sample = self.sample
        if m := _LEAGUE.match(path):
            if int(m[1]) != sample["league"]["id"]:
                return Reply(body=envelope("League", message=NO_RESULT))
            league = copy.deepcopy(sample["league"])
            season = league.pop("currentseason")
            if "currentseason" in includes:
                league["currentseason"] = season
            return Reply(body=envelope("League", data=league))
        if m := _TEAMS.match(path):
            if int(m[1]) != self.season_id:
                return Reply(body=envelope("Team", message=NO_RESULT))
            per_page = min(int(query.get("per_page", ["25"])[0]), 50, self.page_size)
            page = int(query.get("page", ["1"])[0])
            teams = sample["teams"]
            chunk = teams[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(teams)
            pagination = {
                "count": len(chunk),
                "per_page": per_page,
                "current_page": page,
                "next_page": f"https://api.sportmonks.com{path}?page={page + 1}" if more else None,
                "has_more": more,
            }
            return Reply(body=envelope("Team", data=copy.deepcopy(chunk), pagination=pagination))
        if m := _SQUAD.match(path):
            entries = sample["squads"].get(m[2]) if int(m[1]) == self.season_id else None
            if not entries:
                return Reply(body=envelope("Squad", message=NO_RESULT))
            data = copy.deepcopy(entries)
            if "player" in includes:
                for entry in data:
                    entry["player"] = copy.deepcopy(sample["players"].get(str(entry["player_id"])))
            return Reply(body=envelope("Squad", data=data))
        return Reply(status=404, body={"message": "The requested endpoint does not exist!"})

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        query = parse_qs(parts.query)
        with self.lock:
            self.requests.append(Seen(parts.path, query, dict(req.headers.items())))
            if req.headers.get("Authorization") != self.token:
                reply = Reply(status=401, body={"message": "Unauthenticated."})
            elif self.script:
                reply = self.script.popleft()
            else:
                reply = self._route(parts.path, query)
        self.send(req, reply)
