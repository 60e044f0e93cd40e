"""The World Cup's real squads from the Sportmonks Football API v3, and the two rules that make a
squad player an instrument: its id and its base price (docs/pricing.md states both).

Endpoints (under ``FTL_SPORTMONKS_URL``; the token travels in the ``Authorization`` header only):

* ``GET /leagues/{id}?include=currentSeason``: the league's current season (the key comes back
  lower-cased, ``currentseason``);
* ``GET /teams/seasons/{season_id}``: the season's teams, paginated (``page``, ``per_page`` up to
  50, ``pagination.has_more``);
* ``GET /squads/seasons/{season_id}/teams/{team_id}?include=player``: a team's squad that season.

A 200 carrying a ``message`` and no ``data`` is Sportmonks' "no result" (nothing matched, or the
plan does not cover it).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ftl import limits, logs
from ftl.pricing import http
from ftl.pricing.demo import POSITIONS
from ftl.pricing.errors import (
    FeedError,
    MalformedResponse,
    RateLimited,
)
from ftl.pricing.sportmonks import WORLD_CUP_LEAGUE_ID

log = logs.get(__name__)

PER_PAGE = 50  # the most Sportmonks v3 serves per page
MAX_PAGES = 20  # 1000 teams: far more than any season has; more is an error, never a silent cut

INSTRUMENT_ID_OFFSET = 1_000_000_000
"""Instrument id = this + Sportmonks player id. Ids up to here belong to the demo and ``--file``
squads (instrument id = their player id, 37400001..37404726 for the bundled demo)."""
MAX_INSTRUMENT_ID = 2**31 - 1  # the largest id the ws protocol accepts (realtime/protocol.py)
MAX_PLAYER_ID = MAX_INSTRUMENT_ID - INSTRUMENT_ID_OFFSET

BP = 10_000
POSITION_BASE_CENTS: Mapping[str, int] = {
    "Goalkeeper": 700,
    "Defender": 800,
    "Midfielder": 900,
    "Attacker": 1000,
}
"""Base price (cents, at the neutral rating 6.5) of each position, before the player's spread."""
SPREAD_BP = 2_000  # each player is within ±20 % of his position's base


class PriceOutOfBounds(ValueError):
    """A start price outside ``limits.MIN_PRICE..limits.MAX_PRICE``: refused, never clamped."""


class NoTeams(FeedError):
    """The season lists no team (a wrong season id, or a plan without the World Cup)."""

    kind = "no_results"


def instrument_id(player_id: int) -> int:
    """The instrument of a Sportmonks player: ``INSTRUMENT_ID_OFFSET + player_id``."""
    if type(player_id) is not int or not 1 <= player_id <= MAX_PLAYER_ID:
        raise ValueError(f"player id {player_id!r} is outside 1..{MAX_PLAYER_ID}")
    return INSTRUMENT_ID_OFFSET + player_id


def is_sportmonks_instrument(iid: int) -> bool:
    return INSTRUMENT_ID_OFFSET < iid <= MAX_INSTRUMENT_ID


def check_start_price(cents: int) -> int:
    if type(cents) is not int or not limits.MIN_PRICE <= cents <= limits.MAX_PRICE:
        raise PriceOutOfBounds(
            f"start price {cents!r} cents is outside {limits.MIN_PRICE}..{limits.MAX_PRICE}"
        )
    return cents


def spread_bp(player_id: int, spread: int = SPREAD_BP) -> int:
    """The player's own offset from his position's base, in -spread..+spread basis points: fixed
    by his Sportmonks id (BLAKE2b), so every run and every process computes the same one."""
    digest = hashlib.blake2b(b"ftl-base-price:%d" % player_id, digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2 * spread + 1) - spread


def base_price_cents(
    position: str,
    player_id: int,
    *,
    bases: Mapping[str, int] = POSITION_BASE_CENTS,
    spread: int = SPREAD_BP,
) -> int:
    """The price (cents) of the player at the neutral rating: his position's base moved by his
    spread, rounded down. Raises ``PriceOutOfBounds`` rather than clamping."""
    if position not in bases:
        raise ValueError(f"no base price for position {position!r}")
    if not 0 <= spread < BP:
        raise ValueError(f"spread must be 0..{BP - 1} basis points")
    return check_start_price(bases[position] * (BP + spread_bp(player_id, spread)) // BP)


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    name: str
    placeholder: bool = False  # "Winner play-off A" before the play-off: no squad


@dataclass(frozen=True, slots=True)
class Player:
    instrument_id: int
    player_id: int  # Sportmonks player id
    name: str
    team_id: int
    team: str
    position: str
    index_price: int  # start price = base price, cents


@dataclass(frozen=True, slots=True)
class Refused:
    player_id: int
    name: str
    team: str
    reason: str


@dataclass(slots=True)
class Squads:
    season_id: int
    teams: list[Team] = field(default_factory=list)  # teams with a squad
    skipped: list[tuple[Team, str]] = field(default_factory=list)
    players: list[Player] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponse(f"{where}: expected an object")
    return value


def _id(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if type(value) is not int or value < 1:
        raise MalformedResponse(f"{where}.{key}: expected a positive integer")
    return value


def parse_team(value: Any) -> Team:
    obj = _obj(value, "team")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MalformedResponse("team.name: expected a non-empty string")
    return Team(_id(obj, "id", "team"), name.strip(), obj.get("placeholder") is True)


def _name(player: Mapping[str, Any]) -> str:
    for key in ("display_name", "common_name", "name"):
        value = player.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def parse_entry(value: Any, team: Team) -> Player | Refused:
    """A squad entry (with its ``player`` include) as an instrument, or why it is refused. The
    position is the entry's ``position_id``, else the player's (24..27)."""
    entry = _obj(value, "squad entry")
    pid = _id(entry, "player_id", "squad entry")
    player = entry.get("player")
    if not isinstance(player, dict):
        return Refused(pid, "", team.name, "no player data (include=player missing or null)")
    name = _name(player)
    if not name:
        return Refused(pid, "", team.name, "player has no name")
    position_id = entry.get("position_id")
    if position_id is None:
        position_id = player.get("position_id")
    position = POSITIONS.get(position_id) if type(position_id) is int else None
    if position is None:
        return Refused(pid, name, team.name, f"unknown position {position_id!r}")
    try:
        return Player(
            instrument_id(pid), pid, name, team.id, team.name, position, base_price_cents(position, pid)
        )
    except ValueError as exc:  # an id past the rule's range, or PriceOutOfBounds
        return Refused(pid, name, team.name, str(exc))


class SquadsClient:
    """Reads a season's teams and squads. A 429 waits ``rate_limit.resets_in_seconds`` (at most
    ``max_wait_s``, ``retries`` times) and asks again; every other failure raises a ``FeedError``.
    The token is never logged nor shown by ``repr``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 15.0,
        max_wait_s: float = 60.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_wait_s = max_wait_s
        self.retries = retries
        self._sleep = sleep
        self._http = http.client(base_url, token, timeout_s, transport)

    def __repr__(self) -> str:
        return f"SquadsClient(base_url={str(self._http.base_url)!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get_once(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        return _obj(await http.get_json(self._http, path, params), "response")

    async def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                return await self._get_once(path, params)
            except RateLimited as exc:
                wait = exc.resets_in_seconds
                if attempt >= self.retries or wait > self.max_wait_s:
                    raise
                log.warning("sportmonks rate limit: waiting", path=path, wait_s=wait)
                await self._sleep(wait)
        raise AssertionError("unreachable")

    async def _list(self, path: str, params: Mapping[str, str]) -> list[Any]:
        """Every page of a list endpoint; [] for Sportmonks' "no result"."""
        out: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            query = {**params, "per_page": str(PER_PAGE)}
            if page > 1:
                query["page"] = str(page)
            body = await self._get(path, query)
            data = body.get("data")
            if data is None and isinstance(body.get("message"), str):
                return out
            if not isinstance(data, list):
                raise MalformedResponse(f"{path}: data: expected a list")
            out.extend(data)
            pagination = body.get("pagination")
            if not isinstance(pagination, dict) or pagination.get("has_more") is not True:
                return out
        raise MalformedResponse(f"{path}: more than {MAX_PAGES} pages")

    async def current_season(self, league_id: int = WORLD_CUP_LEAGUE_ID) -> int:
        """The id of the league's current season."""
        body = await self._get(f"/leagues/{league_id}", {"include": "currentSeason"})
        if body.get("data") is None:
            raise MalformedResponse(f"league {league_id}: no result ({body.get('message', '')!s:.200})")
        league = _obj(body["data"], "league")
        season = league.get("currentseason", league.get("currentSeason"))
        if not isinstance(season, dict):
            raise MalformedResponse(f"league {league_id} has no current season: pass --season")
        return _id(season, "id", "league.currentseason")

    async def teams(self, season_id: int) -> list[Team]:
        return [parse_team(t) for t in await self._list(f"/teams/seasons/{season_id}", {})]

    async def squad(self, season_id: int, team_id: int) -> list[Any]:
        return await self._list(f"/squads/seasons/{season_id}/teams/{team_id}", {"include": "player"})


async def fetch_squads(client: SquadsClient, season_id: int) -> Squads:
    """Every team of the season and its squad as instruments. Placeholder teams and teams without
    a published squad are skipped; a player listed twice is kept under his first team."""
    teams = await client.teams(season_id)
    if not teams:
        raise NoTeams(f"season {season_id} lists no team (wrong --season, or not in the plan)")
    out = Squads(season_id)
    seen: dict[int, Player] = {}
    for team in teams:
        if team.placeholder:
            out.skipped.append((team, "placeholder (not decided yet)"))
            continue
        entries = await client.squad(season_id, team.id)
        if not entries:
            out.skipped.append((team, "no squad published"))
            continue
        out.teams.append(team)
        for entry in entries:
            got = parse_entry(entry, team)
            if isinstance(got, Player) and got.player_id in seen:
                first = seen[got.player_id]
                got = Refused(got.player_id, got.name, team.name, f"already listed by {first.team}")
            if isinstance(got, Refused):
                out.refused.append(got)
            else:
                seen[got.player_id] = got
                out.players.append(got)
    return out


@dataclass(frozen=True, slots=True)
class Existing:  # a row of ``instruments`` before the seed
    id: int
    player_id: int
    name: str
    team: str
    position: str


@dataclass(slots=True)
class Plan:
    write: list[Player] = field(default_factory=list)
    new: int = 0
    changed: int = 0  # name, team or position; the price is never written over
    unchanged: int = 0
    refused: list[Refused] = field(default_factory=list)
    kept: list[Existing] = field(default_factory=list)  # no longer in any squad: left as they are


def plan(players: Iterable[Player], existing: Iterable[Existing], refused: Iterable[int] = ()) -> Plan:
    """What to upsert, given the table: a player whose Sportmonks id already belongs to another
    instrument (a demo or ``--file`` row), or whose instrument id another player holds, is refused;
    Sportmonks instruments whose player is in no squad any more (not even ``refused``) are kept."""
    rows = list(existing)
    by_player = {r.player_id: r for r in rows}
    by_id = {r.id: r for r in rows}
    out = Plan()
    listed: set[int] = set(refused)
    for p in players:
        listed.add(p.player_id)
        row = by_player.get(p.player_id)
        holder = by_id.get(p.instrument_id)
        if row is not None and row.id != p.instrument_id:
            out.refused.append(
                Refused(p.player_id, p.name, p.team, f"player id already belongs to instrument {row.id}")
            )
        elif holder is not None and holder.player_id != p.player_id:
            reason = f"instrument {p.instrument_id} belongs to player id {holder.player_id}"
            out.refused.append(Refused(p.player_id, p.name, p.team, reason))
        else:
            out.write.append(p)
            if row is None:
                out.new += 1
            elif (row.name, row.team, row.position) != (p.name, p.team, p.position):
                out.changed += 1
            else:
                out.unchanged += 1
    out.kept = [r for r in rows if is_sportmonks_instrument(r.id) and r.player_id not in listed]
    return out
