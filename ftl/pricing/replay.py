"""Replay feed: plays a recorded match file through the same parsing code as the live client."""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftl.pricing import demo
from ftl.pricing.model import LiveSnapshot
from ftl.pricing.parse import parse_livescores


@dataclass(frozen=True, slots=True)
class ReplayFrame:
    at_s: float  # seconds since kickoff
    response: dict[str, Any]  # a Sportmonks livescores response, exact shape


def load_frames(path: str | Path) -> list[ReplayFrame]:
    """Read a match file: a JSON list of ``{"at_s": float, "response": {...}}`` in time order."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path}: expected a non-empty JSON list of frames")
    frames: list[ReplayFrame] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: frame {i} is not an object")
        at_s, response = item.get("at_s"), item.get("response")
        if isinstance(at_s, bool) or not isinstance(at_s, int | float) or at_s < 0:
            raise ValueError(f"{path}: frame {i} needs at_s >= 0")
        if not isinstance(response, dict):
            raise ValueError(f"{path}: frame {i} needs a response object")
        if frames and at_s < frames[-1].at_s:
            raise ValueError(f"{path}: frame {i} goes back in time")
        frames.append(ReplayFrame(float(at_s), response))
    return frames


def resolve_path(spec: str) -> Path:
    """``bundled`` → the packaged demo match; anything else is a file path."""
    return demo.replay_path() if spec == "bundled" else Path(spec)


class ReplayFeed:
    """A ``Feed`` serving, at each fetch, the latest frame whose ``at_s`` has passed.

    Match time runs ``speed`` times faster than ``clock`` from the first fetch. After the last
    frame it keeps serving the last one (a finished fixture: the poller goes idle), or starts over
    with ``loop``.
    """

    def __init__(
        self,
        frames: Sequence[ReplayFrame],
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        leagues: Collection[int] | None = None,
        loop: bool = False,
    ) -> None:
        if not frames:
            raise ValueError("a replay needs at least one frame")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.frames = list(frames)
        self.speed = speed
        self.clock = clock
        self.leagues = frozenset(leagues) if leagues is not None else None
        self.loop = loop
        self._times = [f.at_s for f in self.frames]
        self._start: float | None = None
        self.last_index = -1

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> ReplayFeed:
        """``spec`` is the part after ``replay:`` in ``FTL_FEED`` (a path, or ``bundled``)."""
        return cls(load_frames(resolve_path(spec)), **kwargs)

    @property
    def duration_s(self) -> float:
        return self._times[-1]

    def match_time(self) -> float:
        if self._start is None:
            self._start = self.clock()
        elapsed = (self.clock() - self._start) * self.speed
        if self.loop and self.duration_s > 0:
            elapsed %= self.duration_s + 1.0
        return elapsed

    def frame_at(self, match_s: float) -> ReplayFrame:
        i = max(bisect.bisect_right(self._times, match_s) - 1, 0)
        self.last_index = i
        return self.frames[i]

    async def fetch(self) -> LiveSnapshot:
        return parse_livescores(self.frame_at(self.match_time()).response, self.leagues)

    async def aclose(self) -> None:
        return None
