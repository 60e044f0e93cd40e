"""Plot price against rating for a recorded match, as the price feed would move it.

Plays a replay file through the real parser and normaliser, polling every 2 s of match time (the
live cadence), and draws for a few players their rating, the target it points at and the index,
with halts shaded. The PNG goes into docs/ (docs/pricing.md shows it). Not part of the product.

    pip install matplotlib   # once, into any environment that has ftl
    python -m scripts.plot_pricing [--replay bundled|PATH] [--out docs/img/pricing_replay.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ftl.pricing import demo
from ftl.pricing.normalise import Normaliser, NormaliserConfig, target_cents
from ftl.pricing.parse import parse_livescores
from ftl.pricing.replay import ReplayFeed, load_frames, resolve_path

POLL_S = 2.0


def simulate(replay: str, players: int) -> tuple[list[float], dict[int, dict[str, list[float]]]]:
    """Poll the replay every POLL_S of match time; per chosen player the series of rating,
    target, index and halt (1 while halted), against minutes of match time."""
    frames = load_frames(resolve_path(replay))
    feed = ReplayFeed(frames)
    squads = demo.load_squads()
    norm = Normaliser.from_states(demo.states_from_squads(squads))
    cfg = NormaliserConfig()
    t0 = 1_781_204_400_000
    minutes: list[float] = []
    series: dict[int, dict[str, list[float]]] = {}
    ratings_seen: dict[int, set[float]] = {}
    t = 0.0
    while t <= feed.duration_s + 120:
        snapshot = parse_livescores(feed.frame_at(t).response)
        norm.step(snapshot, t0 + int(t * 1000))
        minutes.append(t / 60)
        for pid, state in norm.players.items():
            if state.rating is not None:
                ratings_seen.setdefault(pid, set()).add(state.rating)
        for pid, state in norm.players.items():
            s = series.setdefault(pid, {"rating": [], "target": [], "index": [], "halt": []})
            s["rating"].append(float("nan") if state.rating is None else state.rating)
            s["target"].append(
                float("nan")
                if state.rating is None
                else target_cents(state.base_cents, state.rating, cfg) / 100
            )
            s["index"].append(state.price_cents / 100)
            s["halt"].append(1.0 if state.halt_until_ms and state.halt_until_ms > t0 + t * 1000 else 0.0)
        t += POLL_S
    busiest = sorted(ratings_seen, key=lambda pid: -len(ratings_seen[pid]))[:players]
    return minutes, {pid: series[pid] for pid in busiest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", default="bundled")
    parser.add_argument("--out", default="docs/img/pricing_replay.png")
    parser.add_argument("--players", type=int, default=4)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes, chosen = simulate(args.replay, args.players)
    fig, axes = plt.subplots(len(chosen), 1, figsize=(10, 2.6 * len(chosen)), sharex=True)
    for ax, (pid, s) in zip(axes, chosen.items(), strict=True):
        ax.plot(minutes, s["target"], color="#bbbbbb", lw=1, label="target (credits)")
        ax.plot(minutes, s["index"], color="#1f77b4", lw=1.5, label="index (credits)")
        top = max(max(s["index"]), max(v for v in s["target"] if v == v)) * 1.05
        ax.fill_between(minutes, 0, [h * top for h in s["halt"]], color="#d62728", alpha=0.15, lw=0)
        ax.set_ylim(min(s["index"]) * 0.9, top)
        ax.set_ylabel(f"player {pid}")
        right = ax.twinx()
        right.step(minutes, s["rating"], where="post", color="#ff7f0e", lw=1, label="rating")
        right.set_ylim(4, 10)
        right.set_ylabel("rating")
        if ax is axes[0]:
            lines = ax.get_lines() + right.get_lines()
            ax.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=8)
    axes[-1].set_xlabel("match time (minutes); red: halted after a goal, card, penalty or VAR")
    fig.suptitle(f"Index against rating, replay '{args.replay}', a poll every {POLL_S:g} s")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
