"""The state of one match day, owned by one object: every mixin of `MatchDay` reads and writes it here."""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftl.persistence.embedded import EmbeddedPostgres, EmbeddedRedis
from ftl.persistence.keys import Keys
from ftl.pricing import demo
from scripts.matchday.replay import ReplayPath
from scripts.matchday.users import Confirmed, Market, User

if TYPE_CHECKING:
    from scripts.matchday.cluster import Role
    from tests.auth.fake_google import FakeGoogle


class MatchDayState:
    """What the simulation knows and has seen; the mixins in the other modules act on it."""

    # set by ClusterMixin.start_servers (cluster.py)
    redis_url: str
    database_url: str
    dropdb: tuple[str, str]  # with --database-url only
    google: FakeGoogle
    ports: dict[str, int]
    env: dict[str, str]
    flusher: Role
    apis: list[Role]
    ws: Role
    # set by MatchDay.run (day.py)
    start_t: float
    end_t: float

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = Path(tempfile.mkdtemp(prefix="ftl-matchday-"))
        self.work.chmod(0o755)
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self.keys = Keys()
        self.replay = ReplayPath()
        self.instruments = self.replay.instruments
        self.all_ids = [p.player_id for p in demo.load_squads()]
        self.market = Market()
        self.confirmed: dict[int, Confirmed] = {}
        self.key_trade: dict[tuple[int, str], int] = {}
        self.key_conflicts: list[str] = []
        self.statuses: Counter[str] = Counter()
        # (phase, send monotonic, latency ms, ok)
        self.samples: list[tuple[str, float, float, bool]] = []
        self.unknown: list[tuple[User, str, dict[str, Any], str, str]] = []  # never got an answer
        self.phase = "warm-up"
        self.phase_log: list[tuple[float, str]] = []
        self.events: list[tuple[float, str]] = []
        self.stop = asyncio.Event()
        self.users: list[User] = []
        self.api_alive = [True, True]
        self.lag: list[tuple[float, float, int]] = []  # (t, oldest outbox entry age s, outbox length)
        self.leader_starts: dict[str, float] = {}
        self.leader: str | None = None
        self.ws_watcher_reconnects = 0
        self.fault_results: dict[str, Any] = {}
        self.redis: EmbeddedRedis | None = None
        self.pg: EmbeddedPostgres | None = None
        self.t0 = time.monotonic()

    def api_port(self, i: int) -> int:
        return self.ports[f"api{i}"]

    def event(self, text: str) -> None:
        t = time.monotonic() - self.t0
        self.events.append((t, text))
        print(f"[{t:7.1f}s] {text}", flush=True)

    def set_phase(self, name: str) -> None:
        self.phase = name
        self.phase_log.append((time.monotonic(), name))
