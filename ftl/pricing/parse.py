"""Parse a Sportmonks v3 livescores response into typed values (pure; shared by live and replay feeds)."""

from __future__ import annotations

import json
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

MAX_RATING = 10.0


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


def _pagination(value: Any) -> Pagination | None:
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


def _rating(details: list[Any], where: str) -> float | None:
    rating: float | None = None
    for i, raw in enumerate(details):
        detail = _dict(raw, f"{where}.details[{i}]")
        if detail.get("type_id") != RATING_TYPE_ID:
            continue
        data = _dict(detail.get("data"), f"{where}.details[{i}].data")
        value = data.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_RATING:
            raise MalformedResponse(f"{where}.details[{i}].data.value: expected a rating 0..10")
        rating = float(value)
    return rating


def _player(raw: Any, where: str) -> PlayerRating | None:
    lineup = _dict(raw, where)
    player_id = _opt_int(lineup, "player_id", where)
    details = _list(lineup, "details", where)
    if player_id is None:  # a lineup slot Sportmonks has not matched to a player: nothing to price
        return None
    return PlayerRating(player_id, _int(lineup, "team_id", where), _rating(details, where))


def _event(raw: Any, where: str) -> MatchEvent:
    event = _dict(raw, where)
    return MatchEvent(
        id=_int(event, "id", where),
        type_id=_int(event, "type_id", where),
        player_id=_opt_int(event, "player_id", where),
        minute=_opt_int(event, "minute", where),
    )


def _fixture(raw: Any, where: str) -> Fixture:
    fx = _dict(raw, where)
    name = fx.get("name")
    players = []
    for i, lineup in enumerate(_list(fx, "lineups", where)):
        player = _player(lineup, f"{where}.lineups[{i}]")
        if player is not None:
            players.append(player)
    events = tuple(_event(e, f"{where}.events[{i}]") for i, e in enumerate(_list(fx, "events", where)))
    return Fixture(
        id=_int(fx, "id", where),
        league_id=_int(fx, "league_id", where),
        state_id=_int(fx, "state_id", where),
        name=name if isinstance(name, str) else "",
        players=tuple(players),
        events=events,
    )


def parse_livescores(body: Any, leagues: Collection[int] | None = None) -> LiveSnapshot:
    """Parse a decoded livescores envelope; raise ``MalformedResponse`` on any shape error.

    ``leagues``: keep only fixtures of these leagues (None keeps all). Any error anywhere rejects the
    whole response: a partial response yields no ratings at all.
    """
    envelope = _dict(body, "response")
    data = envelope.get("data")
    if not isinstance(data, list):
        raise MalformedResponse("response.data: missing or not a list")
    fixtures = [_fixture(fx, f"data[{i}]") for i, fx in enumerate(data)]
    if leagues is not None:
        fixtures = [f for f in fixtures if f.league_id in leagues]
    tz = envelope.get("timezone")
    return LiveSnapshot(
        fixtures=tuple(fixtures),
        rate_limit=parse_rate_limit(envelope.get("rate_limit")),
        pagination=_pagination(envelope.get("pagination")),
        timezone=tz if isinstance(tz, str) else None,
    )


def parse_livescores_bytes(raw: bytes | str, leagues: Collection[int] | None = None) -> LiveSnapshot:
    """Decode JSON text then parse it; invalid JSON is a ``MalformedResponse``."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"response is not JSON: {exc}") from exc
    return parse_livescores(body, leagues)
