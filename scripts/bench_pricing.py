"""CPU time of one price poll cycle (JSON decode + parse + normalise), without the network.

    .venv/bin/python scripts/bench_pricing.py [--cycles 300]

Two workloads: 4 live fixtures x 26 players, and the full 1,248-player cycle (every demo squad,
24 fixtures x 52 players). Each cycle decodes a different pre-built response in which about a
third of the ratings changed, so the normaliser reprices ~400 players per full cycle.
Goal: median <= 50 ms for the full cycle.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from ftl.pricing import demo
from ftl.pricing.normalise import Normaliser
from ftl.pricing.parse import parse_livescores
from tests.pricing import shape


def responses(teams: list[list[demo.SquadPlayer]], variants: int, rng: random.Random) -> list[bytes]:
    """``variants`` livescores bodies (as bytes) for fixtures of consecutive team pairs."""
    ratings = {p.player_id: round(rng.uniform(6.0, 7.0), 2) for squad in teams for p in squad}
    out = []
    for v in range(variants):
        for pid in ratings:
            if rng.random() < 0.33:
                ratings[pid] = round(min(max(ratings[pid] + rng.gauss(0, 0.08), 3.0), 10.0), 2)
        fixtures = []
        for f in range(0, len(teams), 2):
            lineups = [
                shape.lineup(
                    1000 + f,
                    p.player_id,
                    p.team_id,
                    name=p.name,
                    jersey=n % 26 + 1,
                    starter=n % 26 < 11,
                    rating=ratings[p.player_id],
                )
                for pair in teams[f : f + 2]
                for n, p in enumerate(pair)
            ]
            events = [
                shape.event(
                    900 + f * 10 + e,
                    1000 + f,
                    14,
                    team_id=teams[f][0].team_id,
                    player_id=teams[f][0].player_id,
                    minute=10 + e,
                )
                for e in range(v % 3)
            ]
            fixtures.append(shape.fixture(1000 + f, name=f"F{f}", lineups=lineups, events=events))
        out.append(json.dumps(shape.envelope(fixtures)).encode())
    return out


def bench(name: str, teams: list[list[demo.SquadPlayer]], cycles: int) -> dict[str, Any]:
    rng = random.Random(42)
    bodies = responses(teams, 20, rng)
    players = [p for squad in teams for p in squad]
    norm = Normaliser.from_states(demo.states_from_squads(players))
    decode, parse, step, total, changed = [], [], [], [], []
    for i in range(cycles):
        raw = bodies[i % len(bodies)]
        t0 = time.process_time_ns()
        body = json.loads(raw)
        t1 = time.process_time_ns()
        snap = parse_livescores(body, {732})
        t2 = time.process_time_ns()
        changes = norm.step(snap, 1_781_204_400_000 + i * 2000)
        t3 = time.process_time_ns()
        decode.append((t1 - t0) / 1e6)
        parse.append((t2 - t1) / 1e6)
        step.append((t3 - t2) / 1e6)
        total.append((t3 - t0) / 1e6)
        changed.append(len(changes))
    lineups = sum(len(f.players) for f in snap.fixtures)
    return {
        "workload": name,
        "players": lineups,
        "bytes": len(bodies[0]),
        "decode": statistics.median(decode),
        "parse": statistics.median(parse),
        "normalise": statistics.median(step),
        "total": statistics.median(total),
        "p95": statistics.quantiles(total, n=20)[18],
        "changes": statistics.median(changed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU time of one price poll cycle")
    parser.add_argument("--cycles", type=int, default=300)
    args = parser.parse_args()
    squads: dict[int, list[demo.SquadPlayer]] = {}
    for p in demo.load_squads():
        squads.setdefault(p.team_id, []).append(p)
    teams = list(squads.values())
    rows = [
        bench("4 fixtures x 26 players", [t[:13] for t in teams[:8]], args.cycles),
        bench("full cycle (24 fixtures)", teams, args.cycles),
    ]
    print(f"{args.cycles} cycles each; CPU ms per cycle (median; p95 of total)")
    print("| workload | players | response | decode | parse | normalise | total | p95 | changes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workload']} | {r['players']} | {r['bytes'] / 1e3:.0f} kB | {r['decode']:.2f} | "
            f"{r['parse']:.2f} | {r['normalise']:.2f} | {r['total']:.2f} | {r['p95']:.2f} | "
            f"{r['changes']:.0f} |"
        )
    full = rows[1]["total"]
    print(f"goal: full cycle <= 50 ms: {'met' if full <= 50 else 'MISSED'} ({full:.1f} ms)")


if __name__ == "__main__":
    main()
