"""Builders of Sportmonks v3 JSON (livescores, lineups, events, squads) for demo data, tests and benches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftl.pricing.model import RATING_TYPE_ID

RATING_TYPE = {
    "id": RATING_TYPE_ID,
    "name": "Rating",
    "code": "rating",
    "developer_name": "RATING",
    "model_type": "statistic",
    "stat_group": "overall",
}
EVENT_NAMES = {
    10: "VAR",
    14: "Goal",
    15: "Own Goal",
    16: "Penalty",
    17: "Missed Penalty",
    19: "Yellowcard",
    20: "Redcard",
    21: "Yellow/Red card",
    22: "Penalty Shootout Miss",
    23: "Penalty Shootout Goal",
}
STARTER, BENCH = 11, 12  # lineup type ids


def rating_detail(
    fixture_id: int, player_id: int, team_id: int, lineup_id: int, value: float
) -> dict[str, Any]:
    return {
        "id": lineup_id * 10 + 1,
        "fixture_id": fixture_id,
        "player_id": player_id,
        "team_id": team_id,
        "lineup_id": lineup_id,
        "type_id": RATING_TYPE_ID,
        "data": {"value": value},
        "type": RATING_TYPE,
    }


def lineup(
    fixture_id: int,
    player_id: int,
    team_id: int,
    *,
    name: str = "",
    position_id: int = 26,
    jersey: int = 1,
    starter: bool = True,
    rating: float | None = None,
    details: bool = True,
) -> dict[str, Any]:
    """A lineup entry; ``details=False`` leaves the key out (a partial response)."""
    lineup_id = fixture_id * 1000 + player_id % 1000
    entry: dict[str, Any] = {
        "id": lineup_id,
        "sport_id": 1,
        "fixture_id": fixture_id,
        "player_id": player_id,
        "team_id": team_id,
        "position_id": position_id,
        "formation_field": None,
        "type_id": STARTER if starter else BENCH,
        "formation_position": jersey if starter else None,
        "player_name": name,
        "jersey_number": jersey,
    }
    if details:
        entry["details"] = (
            [] if rating is None else [rating_detail(fixture_id, player_id, team_id, lineup_id, rating)]
        )
    return entry


def event(
    event_id: int,
    fixture_id: int,
    type_id: int,
    *,
    team_id: int,
    player_id: int | None,
    player_name: str = "",
    minute: int,
    result: str | None = None,
    period_id: int | None = None,
    info: str | None = None,
    addition: str | None = None,
) -> dict[str, Any]:
    """A match event; ``period_id`` defaults to the 1st or 2nd half's by ``minute``."""
    return {
        "id": event_id,
        "fixture_id": fixture_id,
        "period_id": period_id if period_id is not None else fixture_id * 10 + (1 if minute <= 45 else 2),
        "participant_id": team_id,
        "type_id": type_id,
        "section": "event",
        "player_id": player_id,
        "related_player_id": None,
        "player_name": player_name,
        "related_player_name": None,
        "result": result,
        "info": info,
        "addition": addition if addition is not None else EVENT_NAMES.get(type_id),
        "minute": minute,
        "extra_minute": None,
        "injured": None,
        "on_bench": False,
        "coach_id": None,
        "sub_type_id": None,
    }


def fixture(
    fixture_id: int,
    *,
    league_id: int = 732,
    state_id: int = 2,
    name: str = "",
    starting_at_timestamp: int = 1781805600,
    lineups: Sequence[dict[str, Any]] = (),
    events: Sequence[dict[str, Any]] = (),
    periods: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A livescores fixture; ``periods`` (the include) only when given."""
    body: dict[str, Any] = {
        "id": fixture_id,
        "sport_id": 1,
        "league_id": league_id,
        "season_id": 26618,
        "stage_id": 77476879,
        "group_id": None,
        "aggregate_id": None,
        "round_id": None,
        "state_id": state_id,
        "venue_id": None,
        "name": name,
        "starting_at": None,
        "result_info": None,
        "leg": "1/1",
        "details": None,
        "length": 90,
        "placeholder": False,
        "has_odds": False,
        "has_premium_odds": False,
        "starting_at_timestamp": starting_at_timestamp,
        "lineups": list(lineups),
        "events": list(events),
    }
    if periods is not None:
        body["periods"] = list(periods)
    return body


# Sportmonks period types (``periods`` include): 1st half, 2nd half, extra time, penalties.
PERIOD_TYPES = {1: "1st-half", 2: "2nd-half", 3: "extra-time", 5: "penalties"}
PERIOD_LENGTH = {1: 45, 2: 45, 3: 30, 5: None}
COUNTS_FROM = {1: 0, 2: 45, 3: 90, 5: 120}


def period(
    fixture_id: int,
    sort_order: int,
    type_id: int,
    *,
    started: int | None,
    ended: int | None = None,
    ticking: bool = False,
    minutes: int | None = None,
    seconds: int | None = None,
    counts_from: int | None = None,
    time_added: int | None = None,
) -> dict[str, Any]:
    """One entry of the ``periods`` include (``started``/``ended``: unix seconds). ``minutes`` is
    the match clock (a 2nd-half minute counts from 45, an extra-time one from 90)."""
    return {
        "id": fixture_id * 10 + sort_order,
        "fixture_id": fixture_id,
        "type_id": type_id,
        "started": started,
        "ended": ended,
        "counts_from": COUNTS_FROM.get(type_id, 0) if counts_from is None else counts_from,
        "ticking": ticking,
        "sort_order": sort_order,
        "description": PERIOD_TYPES.get(type_id, "period"),
        "time_added": time_added,
        "period_length": PERIOD_LENGTH.get(type_id),
        "minutes": minutes,
        "seconds": seconds,
        "has_timer": ticking,
    }


# ``GET /v3/football/states`` (id, state, name, short_name, developer_name). Id 23's developer
# name is INPLAY_ET_SECOND_HALF in recorded catalogues (some write INPLAY_ET_2ND_HALF: both read as
# in play). There is no id 24.
STATES: list[tuple[int, str, str, str]] = [
    (1, "NS", "Not Started", "NS"),
    (2, "INPLAY_1ST_HALF", "1st Half", "1st"),
    (3, "HT", "Half Time", "HT"),
    (4, "BREAK", "Break", "BRK"),
    (5, "FT", "Full Time", "FT"),
    (6, "INPLAY_ET", "Extra Time", "et"),
    (7, "AET", "After Extra Time", "AET"),
    (8, "FT_PEN", "After Penalties", "FTP"),
    (9, "INPLAY_PENALTIES", "Penalties", "PEN"),
    (10, "POSTPONED", "Postponed", "POST"),
    (11, "SUSPENDED", "Suspended", "SUSP"),
    (12, "CANCELLED", "Cancelled", "CANC"),
    (13, "TBA", "To Be Announced", "TBA"),
    (14, "WO", "Walk Over", "WO"),
    (15, "ABANDONED", "Abandoned", "ABAN"),
    (16, "DELAYED", "Delayed", "DELA"),
    (17, "AWARDED", "Awarded", "AWAR"),
    (18, "INTERRUPTED", "Interrupted", "INT"),
    (19, "AWAITING_UPDATES", "Awaiting Updates", "AU"),
    (20, "DELETED", "Deleted", "DEL"),
    (21, "EXTRA_TIME_BREAK", "Extra Time - Break", "ETB"),
    (22, "INPLAY_2ND_HALF", "2nd Half", "2nd"),
    (23, "INPLAY_ET_SECOND_HALF", "ET - 2nd Half", "ET2"),
    (25, "PEN_BREAK", "Penalties - Break", "PENB"),
    (26, "PENDING", "Pending", "PEND"),
]


def state(state_id: int, developer_name: str, name: str = "", short_name: str = "") -> dict[str, Any]:
    return {
        "id": state_id,
        "state": developer_name,
        "name": name or developer_name.title(),
        "short_name": short_name or developer_name[:4],
        "developer_name": developer_name,
    }


def catalogue() -> list[dict[str, Any]]:
    """The whole states list, as ``GET /states`` serves it."""
    return [state(i, developer_name, name, short) for i, developer_name, name, short in STATES]


def states_page(entries: Sequence[dict[str, Any]], *, page: int = 1, per_page: int = 25) -> dict[str, Any]:
    """One page of ``GET /states`` over ``entries`` (Sportmonks' envelope, with pagination)."""
    start = (page - 1) * per_page
    chunk = list(entries[start : start + per_page])
    has_more = start + per_page < len(entries)
    return {
        "data": chunk,
        "pagination": {
            "count": len(chunk),
            "per_page": per_page,
            "current_page": page,
            "next_page": f"https://api.sportmonks.com/v3/football/states?page={page + 1}"
            if has_more
            else None,
            "has_more": has_more,
        },
        "subscription": [{"meta": {"trial_ends_at": None, "ends_at": None, "current_timestamp": 0}}],
        "rate_limit": {"resets_in_seconds": 3600, "remaining": 2999, "requested_entity": "State"},
        "timezone": "UTC",
    }


def envelope(
    data: Sequence[dict[str, Any]],
    *,
    remaining: int = 2999,
    resets_in_seconds: int = 3600,
    pagination: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "data": list(data),
        "subscription": [{"meta": {"trial_ends_at": None, "ends_at": None, "current_timestamp": 0}}],
        "rate_limit": {
            "resets_in_seconds": resets_in_seconds,
            "remaining": remaining,
            "requested_entity": "Fixture",
        },
        "timezone": "UTC",
    }
    if pagination is not None:
        body["pagination"] = pagination
    return body
