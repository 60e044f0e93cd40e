"""The replay file, read ahead: the index price of every match player as a function of match time."""

from __future__ import annotations

import bisect
from collections import defaultdict

from ftl.pricing import demo
from ftl.pricing.normalise import Normaliser
from ftl.pricing.parse import parse_livescores
from ftl.pricing.replay import load_frames


class ReplayPath:
    def __init__(self) -> None:
        frames = load_frames(demo.replay_path())
        self.duration_s = frames[-1].at_s
        normaliser = Normaliser.from_states(demo.states_from_squads(demo.load_squads()))
        self.times: dict[int, list[float]] = defaultdict(list)
        self.prices: dict[int, list[int]] = defaultdict(list)
        for frame in frames:
            for change in normaliser.step(parse_livescores(frame.response), int(frame.at_s * 1000)):
                if change.repriced:
                    self.times[change.instrument_id].append(frame.at_s)
                    self.prices[change.instrument_id].append(change.index_cents)
        self.instruments = sorted(self.times)

    def price(self, iid: int, match_s: float) -> int | None:
        i = bisect.bisect_right(self.times[iid], match_s) - 1
        return self.prices[iid][i] if i >= 0 else None

    def move(self, iid: int, match_s: float, ahead_s: float) -> float:
        """Relative index move between now and ``ahead_s`` of match time later."""
        a = self.price(iid, match_s)
        b = self.price(iid, match_s + ahead_s)
        if b is None:
            return 0.0
        if a is None:
            a = demo_base(iid)
        return (b - a) / a


_BASES: dict[int, int] = {}


def demo_base(iid: int) -> int:
    if not _BASES:
        _BASES.update({p.player_id: p.index_price for p in demo.load_squads()})
    return _BASES.get(iid, 1000)
