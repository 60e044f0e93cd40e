"""Generate ftl/pricing/data/replay_et_penalties.json (deterministic): a knockout match that goes
to extra time and penalties, in the replay format (``[{"at_s", "response"}]``).

    .venv/bin/python scripts/make_et_replay.py [--out ftl/pricing/data]

Argentina vs France from the bundled squads (11 starters a side, no substitutes), with ratings,
the ``periods`` include (one Sportmonks period per half, one for extra time, one for the
shoot-out) and these states: 1st half (2), half time (3), 2nd half (22), full time (5, briefly,
as Sportmonks shows it before extra time), break (4), extra time (6), extra-time break (21),
extra time 2nd half (23), penalty break (25), shoot-out (9), after penalties (8). Events: goals at
23', 58', 98', 112'; VAR decisions at 64' and 117'; ten shoot-out kicks (23 scored, 22 missed),
home wins 4-3. Frames every 15-25 s of extra time, 10-20 s of the shoot-out, 90-150 s of regular
time (the bundled 90-minute match covers that finely): 3 MB at most.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.pricing import shape

SEED = 2030
LEAGUE_ID = 732
FIXTURE_ID = 19_440_104
HOME_TEAM, AWAY_TEAM = 4, 6  # indexes in squads.json: Argentina, France
KICKOFF = datetime(2026, 7, 19, 19, 0, tzinfo=UTC)
DATA = Path(__file__).resolve().parent.parent / "ftl" / "pricing" / "data"
OUT_NAME = "replay_et_penalties.json"


@dataclass(frozen=True)
class Phase:
    state_id: int
    start_s: int  # wall seconds since kickoff
    end_s: int
    gaps: tuple[float, float]  # seconds between two frames
    clock0_s: int | None = None  # match clock (seconds) at the phase start, while the ball is in play


# 1st half 45+2, half time 15', 2nd half 45+3, FT shown 30 s, break, ET 15+0, ET break 2',
# ET 2nd half 15+1, penalty break 4', shoot-out (a kick a minute), after penalties.
PHASES = [
    Phase(2, 0, 2820, (90, 150), 0),
    Phase(3, 2820, 3720, (120, 240)),
    Phase(22, 3720, 6600, (90, 150), 45 * 60),
    Phase(5, 6600, 6630, (10, 20)),
    Phase(4, 6630, 6930, (30, 60)),
    Phase(6, 6930, 7830, (15, 25), 90 * 60),
    Phase(21, 7830, 7950, (20, 40)),
    Phase(23, 7950, 8910, (15, 25), 105 * 60),
    Phase(25, 8910, 9150, (40, 80)),
    Phase(9, 9150, 9790, (10, 20)),
    Phase(8, 9790, 9900, (30, 60)),
]
IN_PLAY = {2, 22, 6, 23}
SHOOTOUT_START_S = 9150 + 40
# (wall second, type, home?, info): goals, VAR decisions; the shoot-out kicks follow.
EVENTS: list[tuple[int, int, bool, str | None]] = [
    (22 * 60 + 10, 14, True, None),  # 23'
    (3720 + 12 * 60 + 5, 14, False, None),  # 58'
    (3720 + 18 * 60 + 30, 10, False, "Goal Disallowed"),  # 64'
    (6930 + 7 * 60 + 20, 14, True, None),  # 98'
    (7950 + 6 * 60 + 15, 14, False, None),  # 112'
    (7950 + 11 * 60 + 40, 10, True, "Penalty Disallowed"),  # 117'
]
KICKS = [True, True, True, False, False, True, True, True, True, False]  # scored? home, away, ...
GOAL, VAR, SHOOTOUT_MISS, SHOOTOUT_GOAL = 14, 10, 22, 23


class Side:
    """One team's eleven: ids, names, ratings (None until rated)."""

    def __init__(self, team: dict[str, Any]) -> None:
        self.team_id: int = team["id"]
        self.name: str = team["name"]
        squad = team["players"]
        by_pos = {p: [e for e in squad if e["position_id"] == p] for p in (24, 25, 26, 27)}
        self.entries = by_pos[24][:1] + by_pos[25][:4] + by_pos[26][:4] + by_pos[27][:2]
        self.rating: dict[int, float] = {}

    def ids(self) -> list[int]:
        return [e["player_id"] for e in self.entries]

    def drift(self, rng: random.Random, minute: float) -> None:
        for pid in self.ids():
            if pid not in self.rating:
                if minute >= 6 + rng.random() * 6:
                    self.rating[pid] = round(rng.uniform(6.0, 6.7), 2)
            elif rng.random() < 0.35:
                self.bump(pid, rng.gauss(0.0, 0.06))

    def bump(self, pid: int, delta: float) -> None:
        if pid in self.rating:
            self.rating[pid] = round(min(max(self.rating[pid] + delta, 3.0), 10.0), 2)

    def lineups(self) -> list[dict[str, Any]]:
        return [
            shape.lineup(
                FIXTURE_ID,
                e["player_id"],
                self.team_id,
                name=e["player"]["display_name"],
                position_id=e["position_id"],
                jersey=e["jersey_number"],
                rating=self.rating.get(e["player_id"]),
            )
            for e in self.entries
        ]

    def player_name(self, pid: int) -> str:
        return str(next(e for e in self.entries if e["player_id"] == pid)["player"]["display_name"])


def _phase(t: float) -> Phase:
    return next(p for p in PHASES if p.start_s <= t < p.end_s or p is PHASES[-1])


def _periods(t: float, phase: Phase) -> list[dict[str, Any]]:
    """The ``periods`` include at wall second ``t``: started periods only, the current one last."""
    k = int(KICKOFF.timestamp())
    state = phase.state_id
    clock = None if phase.clock0_s is None else phase.clock0_s + int(t - phase.start_s)
    out = [shape.period(FIXTURE_ID, 1, 1, started=k, ticking=state == 2, time_added=2)]
    if state == 2:
        out[0].update(minutes=clock // 60 if clock is not None else None, seconds=(clock or 0) % 60)
        return out
    out[0]["ended"] = k + 2820
    if state == 3:
        return out
    second = shape.period(FIXTURE_ID, 2, 2, started=k + 3720, ticking=state == 22, time_added=3)
    out.append(second)
    if state == 22 and clock is not None:
        second.update(minutes=clock // 60, seconds=clock % 60)
        return out
    second["ended"] = k + 6600
    if state in (5, 4):
        return out
    # Extra time is one Sportmonks period: counts_from 90, then 105 in its second half.
    extra = shape.period(FIXTURE_ID, 3, 3, started=k + 6930, ticking=state in (6, 23))
    out.append(extra)
    if state in (6, 23) and clock is not None:
        extra.update(minutes=clock // 60, seconds=clock % 60, counts_from=90 if state == 6 else 105)
        extra["time_added"] = 1 if state == 23 else None
        return out
    if state == 21:  # between the halves of extra time: the clock stands at 105:00
        extra.update(minutes=105, seconds=0)
        return out
    extra.update(ended=k + 8910, counts_from=105, time_added=1)
    if state == 25:
        return out
    pens = shape.period(FIXTURE_ID, 4, 5, started=k + 9150, minutes=120)
    if state == 8:
        pens["ended"] = k + 9790
    out.append(pens)
    return out


def make_frames(squads: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    home, away = Side(squads["data"][HOME_TEAM]), Side(squads["data"][AWAY_TEAM])
    name = f"{home.name} vs {away.name}"
    plan: list[tuple[int, int, Side, str | None, int]] = [
        (at, type_id, home if is_home else away, info, 0) for at, type_id, is_home, info in EVENTS
    ]
    for i, scored in enumerate(KICKS):  # home kicks first; the k-th kick of a side: player 10 - k
        side = home if i % 2 == 0 else away
        plan.append(
            (SHOOTOUT_START_S + 60 * i, SHOOTOUT_GOAL if scored else SHOOTOUT_MISS, side, None, i // 2)
        )
    plan.sort(key=lambda item: item[0])
    events: list[dict[str, Any]] = []
    score, pens = [0, 0], [0, 0]
    frames: list[dict[str, Any]] = []
    times = _frame_times(rng.uniform)
    for t in times:
        phase = _phase(t)
        if phase.state_id in IN_PLAY and phase.clock0_s is not None:
            minute = (phase.clock0_s + t - phase.start_s) / 60
            home.drift(rng, minute)
            away.drift(rng, minute)
        while plan and plan[0][0] <= t:
            at, type_id, side, info, kick = plan.pop(0)
            events.append(_event(len(events), at, type_id, side, (home, away), info, kick, score, pens))
        fixture = shape.fixture(
            FIXTURE_ID,
            league_id=LEAGUE_ID,
            state_id=phase.state_id,
            name=name,
            starting_at_timestamp=int(KICKOFF.timestamp()),
            lineups=home.lineups() + away.lineups(),
            events=events,
            periods=_periods(t, phase),
        )
        fixture["starting_at"] = KICKOFF.strftime("%Y-%m-%d %H:%M:%S")
        fixture["length"] = 120
        if phase.state_id == 8:
            fixture["result_info"] = f"{home.name} won after penalties."
        frames.append(
            {
                "at_s": round(t, 1),
                "response": shape.envelope(
                    [fixture],
                    remaining=3000 - len(frames) - 1,
                    resets_in_seconds=max(3600 - int(t) % 3600, 1),
                ),
            }
        )
    return frames


def _frame_times(uniform: Callable[[float, float], float]) -> list[float]:
    """A frame at each phase start, then one every ``phase.gaps`` seconds until the phase ends."""
    times: list[float] = []
    for phase in PHASES:
        t = float(phase.start_s)
        while t < phase.end_s:
            times.append(t)
            t += uniform(*phase.gaps)
    return times


def _event(
    n: int,
    at: int,
    type_id: int,
    side: Side,
    teams: tuple[Side, Side],
    info: str | None,
    kick: int,
    score: list[int],
    pens: list[int],
) -> dict[str, Any]:
    """Record one event (and what it does to the ratings and the score)."""
    home, away = teams
    is_home = side is home
    other = away if is_home else home
    phase = _phase(at)
    ids = side.ids()
    minute = (
        120
        if type_id in (SHOOTOUT_GOAL, SHOOTOUT_MISS)
        else (phase.clock0_s or 0) // 60 + int((at - phase.start_s) // 60) + 1
    )
    result: str | None = None
    if type_id == GOAL:
        pid = ids[9 + n % 2]  # a striker
        score[0 if is_home else 1] += 1
        side.bump(pid, 1.0)
        for p in other.ids():
            other.bump(p, -0.2)
        result = f"{score[0]}-{score[1]}"
    elif type_id == VAR:
        pid = ids[10]
        side.bump(pid, -0.3)
    else:
        pid = ids[10 - kick]
        scored = type_id == SHOOTOUT_GOAL
        pens[0 if is_home else 1] += int(scored)
        side.bump(pid, 0.3 if scored else -0.5)
        other.bump(other.ids()[0], -0.2 if scored else 0.4)  # the goalkeeper
        result = f"{pens[0]}-{pens[1]}"
    sort_order = {2: 1, 22: 2, 6: 3, 23: 3, 9: 4}[phase.state_id]
    return shape.event(
        FIXTURE_ID * 100 + n + 1,
        FIXTURE_ID,
        type_id,
        team_id=side.team_id,
        player_id=pid,
        player_name=side.player_name(pid),
        minute=minute,
        result=result,
        period_id=FIXTURE_ID * 10 + sort_order,
        info="VAR" if type_id == VAR else None,
        addition=info,
    )


def make(squads_path: Path = DATA / "squads.json") -> list[dict[str, Any]]:
    squads = json.loads(squads_path.read_text(encoding="utf-8"))
    return make_frames(squads, random.Random(SEED))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    frames = make()
    text = json.dumps(frames, ensure_ascii=False, separators=(",", ":"))
    (args.out / OUT_NAME).write_text(text + "\n", encoding="utf-8")
    print(f"{OUT_NAME}: {len(frames)} frames, {len(text.encode()) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
