"""Parse a Sportmonks v3 livescores response into typed values (pure; shared by live and replay feeds).

Two kinds of fault. A fault of the response's structure (not JSON, no ``data`` list, a fixture
without ``lineups``/``events`` or a lineup without ``details`` (a partial response), a fixture or
event whose ids are not integers) rejects the whole response: ``MalformedResponse``, no price
moves. A bad value of one player (a rating that is null, not a number, NaN or outside 0..10; a
lineup entry whose ids are not integers) drops that value only: the player keeps his price, the
reason goes to ``LiveSnapshot.bad_values``, every other player is priced as usual. Odd ``periods``
give no progress (``bad_period``), never a rejection.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from ftl.pricing.errors import MalformedResponse
from ftl.pricing.model import (
    RATING_TYPE_ID,
    Fixture,
    LiveSnapshot,
    MatchEvent,
    Pagination,
    PlayerRating,
    RateLimit,
)
from ftl.pricing.states import FALLBACK, StateRegistry

MAX_RATING = 10.0

# Reasons of a dropped value (``LiveSnapshot.bad_values``, ``ftl_pricing_bad_values_total{reason}``).
NULL = "null"  # the rating detail has no value (null or missing)
NOT_A_NUMBER = "not_a_number"  # a string, a boolean, an object...
NAN = "nan"
OUT_OF_RANGE = "out_of_range"  # outside 0..10 (infinities included)
BAD_DETAIL = "bad_detail"  # a lineup detail (or its ``data``) that is not an object
BAD_PLAYER = "bad_player"  # a lineup entry that is not an object, or whose ids are not integers
BAD_PERIOD = "bad_period"  # a ``periods`` include that does not read: no progress for the fixture
REASONS = (NULL, NOT_A_NUMBER, NAN, OUT_OF_RANGE, BAD_DETAIL, BAD_PLAYER, BAD_PERIOD)


def _int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if type(value) is not int:
        raise MalformedResponse(f"{where}.{key}: expected an integer, got {type(value).__name__}")
    return value


def _opt_int(obj: dict[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise MalformedResponse(f"{where}.{key}: expected an integer or null")
    return value


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    if key not in obj:
        raise MalformedResponse(f"{where}.{key}: missing (partial response)")
    value = obj[key]
    if not isinstance(value, list):
        raise MalformedResponse(f"{where}.{key}: expected a list")
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponse(f"{where}: expected an object")
    return value


def parse_rate_limit(value: Any) -> RateLimit | None:
    if value is None:
        return None
    obj = _dict(value, "rate_limit")
    entity = obj.get("requested_entity", "")
    return RateLimit(
        resets_in_seconds=_int(obj, "resets_in_seconds", "rate_limit"),
        remaining=_int(obj, "remaining", "rate_limit"),
        requested_entity=entity if isinstance(entity, str) else "",
    )


def parse_pagination(value: Any) -> Pagination | None:
    if value is None:
        return None
    obj = _dict(value, "pagination")
    next_page = obj.get("next_page")
    return Pagination(
        count=_int(obj, "count", "pagination"),
        per_page=_int(obj, "per_page", "pagination"),
        current_page=_int(obj, "current_page", "pagination"),
        next_page=next_page if isinstance(next_page, str) else None,
        has_more=bool(obj.get("has_more", False)),
    )


def rating_fault(value: Any) -> str | None:
    """Why ``value`` is not a usable rating (a reason), or None when it is one (an int counts)."""
    if value is None:
        return NULL
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NOT_A_NUMBER
    if isinstance(value, float) and math.isnan(value):
        return NAN
    if not 0 <= value <= MAX_RATING:
        return OUT_OF_RANGE
    return None


def _rating(details: list[Any], bad: list[str]) -> float | None:
    """The player's rating (the last detail of type 118); None when he has none, or when one of
    his details is bad (each bad value adds its reason to ``bad``): conflicting data moves no price."""
    rating: float | None = None
    dropped = False
    for raw in details:
        if not isinstance(raw, dict):  # unreadable: it may have been his rating
            bad.append(BAD_DETAIL)
            dropped = True
            continue
        if raw.get("type_id") != RATING_TYPE_ID:
            continue
        data = raw.get("data")
        if data is not None and not isinstance(data, dict):
            bad.append(BAD_DETAIL)
            dropped = True
            continue
        value: Any = None if data is None else data.get("value")
        fault = rating_fault(value)
        if fault is not None:
            bad.append(fault)
            dropped = True
            continue
        rating = float(value)
    return None if dropped else rating


def _player(raw: Any, where: str, bad: list[str]) -> PlayerRating | None:
    if not isinstance(raw, dict):
        bad.append(BAD_PLAYER)
        return None
    details = _list(raw, "details", where)  # missing: a partial response, rejected whole
    player_id, team_id = raw.get("player_id"), raw.get("team_id")
    if player_id is None:  # a lineup slot Sportmonks has not matched to a player: nothing to price
        return None
    if type(player_id) is not int or type(team_id) is not int:
        bad.append(BAD_PLAYER)
        return None
    return PlayerRating(player_id, team_id, _rating(details, bad))


def _event(raw: Any, where: str) -> MatchEvent:
    event = _dict(raw, where)
    return MatchEvent(
        id=_int(event, "id", where),
        type_id=_int(event, "type_id", where),
        player_id=_opt_int(event, "player_id", where),
        minute=_opt_int(event, "minute", where),
    )


def parse_progress(periods: Any) -> tuple[tuple[int, int] | None, bool]:
    """``(progress, odd)`` from a fixture's ``periods`` include.

    The current period is the ticking one, else the started one with the highest ``sort_order``.
    Progress is ``(sort_order, minutes·60 + seconds)`` on its clock; once it has ended (a break
    after it: half time, before extra time or penalties, full time) the match stands at the start
    of the next one: ``(sort_order + 1, 0)``, ahead of every frame of the ended period and behind
    every frame of the next. None when there are no periods (the include is absent, the match has
    not started) or the current one shows no clock; ``odd`` when the include does not read (then
    no progress either).
    """
    if periods is None:
        return None, False
    if not isinstance(periods, list):
        return None, True
    current: dict[str, Any] | None = None
    current_key = (False, 0)
    for p in periods:
        if not isinstance(p, dict) or type(p.get("sort_order")) is not int:
            return None, True
        started, ended = p.get("started"), p.get("ended")
        if (started is not None and type(started) is not int) or (
            ended is not None and type(ended) is not int
        ):
            return None, True
        ticking = p.get("ticking") is True
        if started is None and not ticking:
            continue
        key = (ticking, p["sort_order"])
        if current is None or key > current_key:
            current, current_key = p, key
    if current is None:
        return None, False
    sort_order = current_key[1]
    if not current_key[0] and current.get("ended") is not None:
        return (sort_order + 1, 0), False
    minutes, seconds = current.get("minutes"), current.get("seconds")
    if minutes is None:
        return None, False
    if type(minutes) is not int or minutes < 0:
        return None, True
    if seconds is None:
        seconds = 0
    if type(seconds) is not int or not 0 <= seconds < 60:
        return None, True
    return (sort_order, minutes * 60 + seconds), False


def _fixture(raw: Any, where: str, states: StateRegistry, bad: list[str]) -> Fixture:
    fx = _dict(raw, where)
    name = fx.get("name")
    players = []
    for i, lineup in enumerate(_list(fx, "lineups", where)):
        player = _player(lineup, f"{where}.lineups[{i}]", bad)
        if player is not None:
            players.append(player)
    events = tuple(_event(e, f"{where}.events[{i}]") for i, e in enumerate(_list(fx, "events", where)))
    progress, odd = parse_progress(fx.get("periods"))
    if odd:
        bad.append(BAD_PERIOD)
    state_id = _int(fx, "state_id", where)
    return Fixture(
        id=_int(fx, "id", where),
        league_id=_int(fx, "league_id", where),
        state_id=state_id,
        name=name if isinstance(name, str) else "",
        players=tuple(players),
        events=events,
        progress=progress,
        state_live=states.is_live(state_id),
    )


def parse_livescores(
    body: Any, leagues: Collection[int] | None = None, states: StateRegistry | None = None
) -> LiveSnapshot:
    """Parse a decoded livescores envelope; raise ``MalformedResponse`` on a structural fault.

    ``leagues``: keep only fixtures of these leagues (None keeps all; the bad values of the others
    are not reported). ``states``: which ``state_id`` is live (default: the fallback ids).
    """
    envelope = _dict(body, "response")
    data = envelope.get("data")
    if not isinstance(data, list):
        raise MalformedResponse("response.data: missing or not a list")
    registry = states if states is not None else FALLBACK
    fixtures: list[Fixture] = []
    bad_values: list[str] = []
    for i, raw in enumerate(data):
        bad: list[str] = []
        fixture = _fixture(raw, f"data[{i}]", registry, bad)
        if leagues is None or fixture.league_id in leagues:
            fixtures.append(fixture)
            bad_values.extend(bad)
    tz = envelope.get("timezone")
    return LiveSnapshot(
        fixtures=tuple(fixtures),
        rate_limit=parse_rate_limit(envelope.get("rate_limit")),
        pagination=parse_pagination(envelope.get("pagination")),
        timezone=tz if isinstance(tz, str) else None,
        bad_values=tuple(bad_values),
    )


def parse_livescores_bytes(
    raw: bytes | str, leagues: Collection[int] | None = None, states: StateRegistry | None = None
) -> LiveSnapshot:
    """Decode JSON text then parse it; invalid JSON is a ``MalformedResponse``."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"response is not JSON: {exc}") from exc
    return parse_livescores(body, leagues, states)
