"""The data of the simulation: users, their positions, confirmed trades, and the market view."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from scripts.matchday.http_client import Http


@dataclass
class Position:
    id: int
    instrument_id: int
    side: str
    qty: int
    opened: float


@dataclass
class User:
    index: int
    strategy: str
    ip: str
    home: int  # index of its api
    sub: str
    user_id: int = 0
    token: str = ""
    positions: dict[int, Position] = field(default_factory=dict)
    conns: dict[int, Http] = field(default_factory=dict)

    def conn(self, port: int) -> Http:
        if port not in self.conns:
            self.conns[port] = Http(port, self.ip)
        return self.conns[port]

    def close(self) -> None:
        for c in self.conns.values():
            c.close()


@dataclass
class Confirmed:
    user_id: int
    key: str
    kind: str
    side: str
    qty: int
    price: int
    fee: int
    margin: int
    realised_pnl: int
    acceptable: int
    strategy: str


@dataclass
class Market:
    """What the clients know of prices: the ws feed of one watcher socket."""

    mark: dict[int, int] = field(default_factory=dict)
    index: dict[int, int] = field(default_factory=dict)
    history: dict[int, deque[tuple[float, int]]] = field(default_factory=lambda: defaultdict(deque))

    def update(self, msg: dict[str, Any]) -> None:
        iid = int(msg["id"])
        self.mark[iid] = int(msg["price"])
        if "index" in msg and msg["index"] is not None:
            idx = int(msg["index"])
            if self.index.get(iid) != idx:
                self.index[iid] = idx
                hist = self.history[iid]
                hist.append((time.monotonic(), idx))
                while len(hist) > 50:
                    hist.popleft()

    def trend(self, iid: int, window_s: float) -> float:
        hist = self.history.get(iid)
        if not hist or len(hist) < 2:
            return 0.0
        cutoff = time.monotonic() - window_s
        base = next((p for t, p in hist if t >= cutoff), hist[-1][1])
        older = [p for t, p in hist if t < cutoff]
        if older:
            base = older[-1]
        return (hist[-1][1] - base) / base if base else 0.0
