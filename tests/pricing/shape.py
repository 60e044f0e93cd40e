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
    14: "Goal",
    15: "Own Goal",
    16: "Penalty",
    17: "Missed Penalty",
    19: "Yellowcard",
    20: "Redcard",
    21: "Yellow/Red card",
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
) -> dict[str, Any]:
    return {
        "id": event_id,
        "fixture_id": fixture_id,
        "period_id": fixture_id * 10 + (1 if minute <= 45 else 2),
        "participant_id": team_id,
        "type_id": type_id,
        "section": "event",
        "player_id": player_id,
        "related_player_id": None,
        "player_name": player_name,
        "related_player_name": None,
        "result": result,
        "info": None,
        "addition": EVENT_NAMES.get(type_id),
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
) -> dict[str, Any]:
    return {
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
