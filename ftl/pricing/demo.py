"""The bundled demo data: 48 squads of 26 players and a recorded 90-minute match."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ftl.pricing.normalise import PlayerState

POSITIONS = {24: "Goalkeeper", 25: "Defender", 26: "Midfielder", 27: "Attacker"}


@dataclass(frozen=True, slots=True)
class SquadPlayer:
    team_id: int
    team: str
    player_id: int  # Sportmonks player id
    name: str  # display name
    position: str
    index_price: int  # starting index price, cents


def data_path(name: str) -> Path:
    return Path(str(resources.files("ftl.pricing").joinpath("data", name)))


def squads_path() -> Path:
    return data_path("squads.json")


def replay_path() -> Path:
    return data_path("replay_match.json")


def parse_squads(body: Any) -> list[SquadPlayer]:
    """Read a squads file: ``{"data": [team, ...]}``, each team with ``players`` (Sportmonks squad
    entries carrying a nested ``player`` and our ``index_price`` in cents)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("squads file: expected {'data': [teams]}")
    out: list[SquadPlayer] = []
    for team in body["data"]:
        for entry in team["players"]:
            player = entry["player"]
            out.append(
                SquadPlayer(
                    team_id=int(team["id"]),
                    team=str(team["name"]),
                    player_id=int(entry["player_id"]),
                    name=str(player["display_name"]),
                    position=POSITIONS[int(entry["position_id"])],
                    index_price=int(entry["index_price"]),
                )
            )
    return out


def load_squads(path: str | Path | None = None) -> list[SquadPlayer]:
    """Every player of the squads file (default: the bundled one)."""
    return parse_squads(json.loads(Path(path or squads_path()).read_text(encoding="utf-8")))


def states_from_squads(
    players: list[SquadPlayer], instrument_ids: Mapping[int, int] | None = None
) -> dict[int, PlayerState]:
    """Normaliser states at the starting prices, keyed by player id. ``instrument_ids`` maps a
    player id to its instrument id (default: the same number)."""
    ids = instrument_ids or {}
    return {
        p.player_id: PlayerState(ids.get(p.player_id, p.player_id), p.index_price, p.index_price)
        for p in players
    }
