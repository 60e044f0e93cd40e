"""Match day: the whole system as production runs it, under load and faults, checked from the outside.

    .venv/bin/python -m scripts.matchday [--users 200] [--ws-clients 400] [--duration 120]
        [--speed 10] [--seed 1] [--no-faults]

1. Starts one Redis and one PostgreSQL (embedded, in a temp dir; or --redis-url/--database-url),
   runs `ftl migrate` and `ftl seed`, then the production shape as separate processes:
   api x2 (two ports), ws x1 (FTL_WS_WORKERS=2), flusher x1, FTL_ENV=production, the bundled
   match replayed (FTL_FEED=replay:bundled) at --speed, and a fake Google (JWKS on loopback).
2. Simulated users sign in with Google ID tokens, each from its own loopback address (the auth
   rate limit is per client IP), and trade with a strategy: random, momentum, contrarian, or
   informed (reads the replay file --informed-lead seconds ahead of the api's replay clock).
   WebSocket clients (in --ws-procs worker processes) hold subscriptions and reconnect on close.
3. Faults on a schedule (--no-faults turns them off): kill -9 Redis and restart it, kill -9 an
   api and restart it, kill -9 the flusher and restart it, a burst of slow ws clients that
   subscribe to everything and never read.
4. At the end: the flusher drains, `ftl audit` runs, and DESIGN section 8's invariants are checked
   from the outside (every confirmed trade in PostgreSQL exactly once, money conserved, no
   negative balance, skews equal open positions, one trade per idempotency key, fills within the
   acceptable price, no 500).
5. Prints one report; exits 1 on any broken invariant.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import itertools
import json
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import psycopg
import redis.asyncio as aioredis

from ftl.persistence.embedded import EmbeddedPostgres, EmbeddedRedis
from ftl.persistence.keys import Keys
from ftl.persistence.processes import _child_setup, free_port
from ftl.pricing import demo
from ftl.pricing.normalise import Normaliser
from ftl.pricing.parse import parse_livescores
from ftl.pricing.replay import load_frames
from tests.auth.fake_google import CLIENT_ID, FakeGoogle, mint

ROOT = Path(__file__).resolve().parent.parent
KID = "matchday-1"
STRATEGIES = ("random", "momentum", "contrarian")
IO_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def pct(data: Sequence[float], p: float) -> float:
    if not data:
        return float("nan")
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 keep-alive client on raw asyncio streams, bound to one source address


class Http:
    def __init__(self, port: int, local_ip: str) -> None:
        self.port = port
        self.local_ip = local_ip
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: Any = None, timeout: float = 15.0
    ) -> tuple[int, Any]:
        try:
            return await asyncio.wait_for(self._request(method, path, headers, body), timeout)
        except BaseException:
            self.close()
            raise

    async def _request(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(self.local_ip, 0)
            )
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            f"Content-Length: {len(payload)}",
            "Content-Type: application/json",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await self.reader.readexactly(length) if length else b""
        return status, (json.loads(data) if data else None)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def user_ip(index: int) -> str:
    return f"127.77.{1 + index // 250}.{1 + index % 250}"


# ---------------------------------------------------------------------------------------------
# The replay file, read ahead: index price of every match player as a function of match time


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


# ---------------------------------------------------------------------------------------------
# Processes


class Role:
    """One `ftl` process (api, ws, flusher, or a one-shot command)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as out:
            out.write(f"\n---- start #{self.starts} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ftl", *self.args],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup(None, None),  # own process group; dies with us
            )

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reap_group()

    def _reap_group(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # leftover workers of this process only

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._reap_group()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reap_group()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def http_get_status(port: int, path: str) -> int:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            s.settimeout(3)
            head = s.recv(64)
            return int(head[9:12]) if head.startswith(b"HTTP/1.") else 0
    except (OSError, ValueError):
        return 0


async def wait_ready(port: int, role: Role, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not role.alive():
            raise RuntimeError(f"{role.name} exited ({role.proc and role.proc.returncode}):\n{role.tail()}")
        if await asyncio.to_thread(http_get_status, port, "/readyz") == 200:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{role.name} not ready after {timeout}s:\n{role.tail()}")


def run_once(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftl", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# Users


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


# ---------------------------------------------------------------------------------------------
# The simulation


class MatchDay:
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

    # -- infrastructure ---------------------------------------------------------------------------

    async def start_servers(self) -> None:
        a = self.args
        if a.redis_url:
            self.redis_url = a.redis_url
            self.keys = Keys(f"md{secrets.token_hex(3)}:")
        else:
            self.redis = EmbeddedRedis(self.work)
            await self.redis.start()
            self.redis_url = self.redis.url
        if a.database_url:
            name = f"ftl_matchday_{secrets.token_hex(4)}"
            with psycopg.connect(a.database_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.database_url = f"{a.database_url.rpartition('/')[0]}/{name}"
            self.dropdb = (a.database_url, name)
        else:
            self.pg = EmbeddedPostgres(self.work)
            await self.pg.start()
            self.database_url = self.pg.url
        self.google = FakeGoogle().start()
        self.google.publish(KID)
        self.ports = {
            "api0": free_port(),
            "api1": free_port(),
            "ws": free_port(),
            "flusher": free_port(),
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
        base.update(
            {
                "FTL_ENV": "production",
                "FTL_REDIS_URL": self.redis_url,
                "FTL_DATABASE_URL": self.database_url,
                "FTL_REDIS_PREFIX": self.keys.prefix,
                "FTL_DATA_DIR": str(self.work / "ftl"),
                "FTL_HOST": "127.0.0.1",
                "FTL_JWT_KEYS": f"md1:{secrets.token_urlsafe(40)}",
                "FTL_GOOGLE_CLIENT_ID": CLIENT_ID,
                "FTL_GOOGLE_JWKS_URL": self.google.url,
                "FTL_FEED": "replay:bundled",
                "FTL_REPLAY_SPEED": str(a.speed),
                "FTL_SEED_DEMO": "0",
                "FTL_WS_WORKERS": "2",
                "FTL_DRAIN_S": "0.5",
                "FTL_LOG_LEVEL": "info",
                "FTL_ACCESS_TTL_S": str(int(max(900, a.duration * 3 + 600))),
                "FTL_API_PORT": str(self.ports["api0"]),
                "FTL_WS_PORT": str(self.ports["ws"]),
                "FTL_FLUSHER_PORT": str(self.ports["flusher"]),
            }
        )
        self.env = base
        for cmd in (["migrate"], ["seed"]):
            out = run_once(cmd, base)
            if out.returncode != 0:
                raise RuntimeError(f"ftl {cmd[0]} failed:\n{out.stdout}\n{out.stderr}")
            self.event(f"ftl {cmd[0]}: {out.stdout.strip().splitlines()[-1]}")
        self.flusher = Role("flusher", ["run", "--role=flusher"], base, self.logs)
        self.apis = [
            Role("api0", ["run", "--role=api"], {**base, "FTL_API_PORT": str(self.ports["api0"])}, self.logs),
            Role("api1", ["run", "--role=api"], {**base, "FTL_API_PORT": str(self.ports["api1"])}, self.logs),
        ]
        self.ws = Role("ws", ["run", "--role=ws"], base, self.logs)
        self.flusher.start()
        await wait_ready(self.ports["flusher"], self.flusher, 90)
        for role in (*self.apis, self.ws):
            role.start()
        await wait_ready(self.ports["api0"], self.apis[0], 90)
        await wait_ready(self.ports["api1"], self.apis[1], 90)
        await wait_ready(self.ports["ws"], self.ws, 90)
        self.event("api x2, ws x1 (2 workers), flusher x1 ready")

    def api_port(self, i: int) -> int:
        return self.ports[f"api{i}"]

    def event(self, text: str) -> None:
        t = time.monotonic() - self.t0
        self.events.append((t, text))
        print(f"[{t:7.1f}s] {text}", flush=True)

    def set_phase(self, name: str) -> None:
        self.phase = name
        self.phase_log.append((time.monotonic(), name))

    async def shutdown(self) -> None:
        for role in (*getattr(self, "apis", []), getattr(self, "ws", None), getattr(self, "flusher", None)):
            if role is not None:
                await asyncio.to_thread(role.stop)
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
        if getattr(self, "dropdb", None):
            url, name = self.dropdb
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if getattr(self, "google", None) is not None:
            self.google.stop()

    # -- users ------------------------------------------------------------------------------------

    async def login(self, user: User) -> None:
        id_token = mint(KID, sub=user.sub, email=f"fan-{user.sub}@example.com", name=f"Fan {user.index}")
        body = {"id_token": id_token, "district_id": 1 + user.index % 12}
        for attempt in range(30):
            port = self.api_port(user.home if self.api_alive[user.home] else 1 - user.home)
            try:
                status, reply = await user.conn(port).request("POST", "/api/auth/google", {}, body)
            except IO_ERRORS:
                status, reply = 0, None
            if status == 200:
                user.user_id = int(reply["user"]["id"])
                user.token = reply["access_token"]
                return
            self.statuses[f"login {status}"] += 1
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        raise RuntimeError(f"user {user.index} could not sign in")

    async def trade(
        self, user: User, path: str, body: dict[str, Any], acceptable: int
    ) -> dict[str, Any] | None:
        """Send one trade; retry with the same Idempotency-Key until a definite answer."""
        key = secrets.token_hex(10)
        api = user.home if self.api_alive[user.home] else 1 - user.home
        for attempt in range(40):
            headers = {"Authorization": f"Bearer {user.token}", "Idempotency-Key": key}
            phase, t0 = self.phase, time.monotonic()
            try:
                status, reply = await user.conn(self.api_port(api)).request("POST", path, headers, body)
            except IO_ERRORS:
                status, reply = 0, None
            ms = (time.monotonic() - t0) * 1000
            ok = status in (200, 201)
            self.samples.append((phase, t0, ms, ok))
            if ok:
                self.statuses[str(status)] += 1
                self.record(user, key, reply, acceptable)
                return dict(reply)
            code = str((reply or {}).get("error", {}).get("code", "")) if isinstance(reply, dict) else ""
            self.statuses[f"{status}:{code}" if status else "transport_error"] += 1
            if status == 401 and code == "token_expired":
                await self.login(user)
                continue
            if status == 0:  # the api died or hung: the other replica, same key
                api = 1 - api
                await asyncio.sleep(min(0.1 * (attempt + 1), 1.0))
                continue
            if status in (502, 503, 504) or status >= 500:
                await asyncio.sleep(min(0.2 * (attempt + 1), 1.0))
                continue
            return None  # a definite rejection (4xx)
        self.unknown.append((user, path, body, key, str(acceptable)))
        return None

    def record(self, user: User, key: str, reply: dict[str, Any], acceptable: int) -> None:
        trade = reply["trade"]
        tid = int(trade["id"])
        seen = self.key_trade.setdefault((user.user_id, key), tid)
        if seen != tid:
            self.key_conflicts.append(f"user {user.user_id} key {key}: trades {seen} and {tid}")
        self.confirmed[tid] = Confirmed(
            user.user_id,
            key,
            str(trade["kind"]),
            str(trade["side"]),
            int(trade["qty"]),
            int(trade["price"]),
            int(trade["fee"]),
            int(trade["margin"]),
            int(trade.get("realised_pnl", 0)),
            acceptable,
            user.strategy,
        )
        pos = reply["position"]
        pid = int(pos["id"])
        if trade["kind"] == "open":
            user.positions[pid] = Position(
                pid, int(trade["instrument_id"]), str(trade["side"]), int(trade["qty"]), time.monotonic()
            )
        elif pos.get("status") != "open":
            user.positions.pop(pid, None)
        elif pid in user.positions:
            user.positions[pid].qty = int(pos["qty"])

    def mark(self, iid: int) -> int:
        return self.market.mark.get(iid) or self.market.index.get(iid) or demo_base(iid)

    async def open(self, user: User, iid: int, side: str, qty: int, leverage: int, tol: float) -> None:
        mark = self.mark(iid)
        acceptable = math.ceil(mark * (1 + tol)) if side == "long" else max(1, math.floor(mark * (1 - tol)))
        body = {
            "instrument_id": iid,
            "side": side,
            "qty": qty,
            "leverage": leverage,
            "acceptable_price": acceptable,
        }
        await self.trade(user, "/api/positions/open", body, acceptable)

    async def close(self, user: User, pos: Position, tol: float) -> None:
        mark = self.mark(pos.instrument_id)
        # closing a long sells (fill >= acceptable), closing a short buys (fill <= acceptable)
        acceptable = (
            max(1, math.floor(mark * (1 - tol))) if pos.side == "long" else math.ceil(mark * (1 + tol))
        )
        reply = await self.trade(
            user, f"/api/positions/{pos.id}/close", {"acceptable_price": acceptable}, acceptable
        )
        if reply is None and pos.id in user.positions:
            # rejected: liquidated meanwhile, or slippage; forget it if it is no longer open
            user.positions.pop(pos.id, None) if self.rng.random() < 0.3 else None

    async def decide(self, user: User) -> None:
        rng = self.rng
        if user.strategy == "informed":
            await self.decide_informed(user)
            return
        if user.positions and (rng.random() < 0.35 or len(user.positions) >= 6):
            pos = rng.choice(list(user.positions.values()))
            await self.close(user, pos, rng.uniform(0.005, 0.03))
            return
        iid = rng.choice(self.instruments) if rng.random() < 0.7 else rng.choice(self.all_ids)
        side = rng.choice(("long", "short"))
        if user.strategy in ("momentum", "contrarian"):
            trends = [(self.market.trend(i, 20.0), i) for i in rng.sample(self.instruments, 8)]
            move, iid = max(trends, key=lambda x: abs(x[0]))
            if move != 0:
                up = move > 0
                side = "long" if up == (user.strategy == "momentum") else "short"
        await self.open(user, iid, side, rng.randint(1, 20), rng.randint(1, 5), rng.uniform(0.005, 0.03))

    def match_time(self) -> float | None:
        if self.leader is None or self.leader not in self.leader_starts:
            return None
        return (time.monotonic() - self.leader_starts[self.leader]) * self.args.speed

    async def decide_informed(self, user: User) -> None:
        lead_match = self.args.informed_lead * self.args.speed
        t = self.match_time()
        if t is None:
            return
        for pos in list(user.positions.values()):
            ahead = self.replay.move(pos.instrument_id, t, lead_match)
            against = (ahead < 0) if pos.side == "long" else (ahead > 0)
            if time.monotonic() - pos.opened > self.args.informed_lead * 1.5 or against:
                await self.close(user, pos, 0.02)
        held = {p.instrument_id for p in user.positions.values()}
        best = max(
            ((self.replay.move(i, t, lead_match), i) for i in self.instruments if i not in held),
            key=lambda x: abs(x[0]),
            default=(0.0, 0),
        )
        move, iid = best
        if abs(move) < 0.004 or len(user.positions) >= 4:
            return
        mark = self.mark(iid)
        qty = max(1, min(2000, int(150_000 / max(mark, 1))))  # ~1,500.00 of notional at 5x
        await self.open(user, iid, "long" if move > 0 else "short", qty, 5, 0.02)

    async def run_user(self, user: User) -> None:
        think = self.args.think / (3 if user.strategy == "informed" else 1)
        await asyncio.sleep(self.rng.uniform(0, think))
        while not self.stop.is_set():
            try:
                await self.decide(user)
            except Exception as exc:  # never let one user's bug stop the day; count it
                self.statuses[f"client_bug:{type(exc).__name__}"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.rng.expovariate(1 / think))

    async def wind_down(self) -> None:
        """Informed traders close everything (their profit is then realised)."""

        async def close_all(user: User) -> None:
            for pos in list(user.positions.values()):
                await self.close(user, pos, 0.05)

        await asyncio.gather(*(close_all(u) for u in self.users if u.strategy == "informed"))
        # trades that never got a definite answer: retry with their key once more
        left, self.unknown = self.unknown, []
        for user, path, body, _key, acceptable in left:
            await self.trade(user, path, body, int(acceptable))

    # -- observers --------------------------------------------------------------------------------

    async def watch_market(self) -> None:
        """One ws socket of the simulator: the market view of momentum and contrarian traders."""
        from websockets.asyncio.client import connect

        url = f"ws://127.0.0.1:{self.ports['ws']}/ws"
        while not self.stop.is_set():
            try:
                token = self.users[0].token
                async with connect(
                    url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None
                ) as ws:
                    await ws.send(msgpack.packb({"op": "subscribe", "ids": self.instruments[:200]}))
                    async for frame in ws:
                        msg = msgpack.unpackb(frame)
                        if msg.get("type") == "PRICE_UPDATE":
                            self.market.update(msg)
                        if self.stop.is_set():
                            return
            except Exception:  # closed, refused: reconnect
                self.ws_watcher_reconnects += 1
                await asyncio.sleep(0.5)

    async def observe(self) -> None:
        """Flusher lag (age of the oldest outbox entry) and the replay leader, twice a second."""
        client = aioredis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
        lock = self.keys.lock("pricing-poller")
        try:
            while not self.stop.is_set():
                try:
                    holder = await client.get(lock)
                    oldest = await client.xrange(self.keys.outbox, count=1)
                    length = int(await client.xlen(self.keys.outbox))
                    if holder is not None:
                        token = holder.decode()
                        self.leader_starts.setdefault(token, time.monotonic())
                        self.leader = token
                    age = 0.0
                    if oldest:
                        age = max(0.0, (now_ms() - int(oldest[0][0].decode().split("-")[0])) / 1000)
                    self.lag.append((time.monotonic(), age, length))
                except (OSError, aioredis.RedisError):
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 0.5)
        finally:
            await client.aclose()

    # -- faults -----------------------------------------------------------------------------------

    async def until(self, t: float) -> None:
        delay = self.start_t + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def first_ok_after(self, t: float) -> float | None:
        times = [s[1] + s[2] / 1000 for s in self.samples if s[3] and s[1] >= t]
        return min(times) if times else None

    async def wait_first_ok(self, t: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.first_ok_after(t)
            if found is not None:
                return found - t
            await asyncio.sleep(0.1)
        return None

    async def faults(self) -> None:
        d = self.args.duration
        if self.redis is not None:
            await self.until(0.18 * d)
            self.set_phase("Redis killed -> first trade")
            t = time.monotonic()
            assert self.redis.server.proc is not None
            self.redis.server.proc.kill()
            self.redis.server.proc.wait(10)
            self.event("fault: kill -9 Redis")
            await asyncio.sleep(1.0)
            self.redis = EmbeddedRedis(self.work, port=self.redis.port)
            await self.redis.start()
            self.event(f"Redis restarted empty ({time.monotonic() - t:.1f} s after the kill)")
            rec = await self.wait_first_ok(t, 120)
            self.fault_results["redis_recovery_s"] = rec
            self.event(f"first confirmed trade {rec if rec is None else round(rec, 2)} s after the kill")
            self.set_phase("after Redis recovery")
        await self.until(0.38 * d)
        # the api holding the replay leader lock, when we can tell (kill it: the feed must fail over)
        victim = 0
        self.set_phase("api killed -> restarted")
        leader_before = self.leader
        t = time.monotonic()
        self.api_alive[victim] = False
        await asyncio.to_thread(self.apis[victim].kill9)
        self.event(f"fault: kill -9 api{victim}")
        self.apis[victim].start()
        took = await wait_ready(self.api_port(victim), self.apis[victim], 120)
        self.api_alive[victim] = True
        self.fault_results["api_restart_s"] = time.monotonic() - t
        self.event(f"api{victim} restarted and ready ({took:.1f} s)")
        self.set_phase("after api restart")
        deadline = time.monotonic() + 15
        while self.leader == leader_before and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        moved = self.leader != leader_before
        self.fault_results["leader"] = (
            "moved to another api" if moved else "stayed (victim was not the leader)"
        )
        self.event(f"replay leader {self.fault_results['leader']}")
        await self.until(0.55 * d)
        self.set_phase("flusher killed -> ready")
        t = time.monotonic()
        await asyncio.to_thread(self.flusher.kill9)
        self.event("fault: kill -9 flusher")
        self.flusher.start()
        await wait_ready(self.ports["flusher"], self.flusher, 120)
        self.fault_results["flusher_restart_s"] = time.monotonic() - t
        self.event(f"flusher restarted and ready ({time.monotonic() - t:.1f} s)")
        self.set_phase("after flusher restart")
        await self.until(0.7 * d)
        self.set_phase("slow ws burst")
        self.fault_results["slow"] = await self.slow_burst(min(15.0, max(6.0, 0.15 * d)))
        self.set_phase("after slow ws burst")

    async def slow_burst(self, hold_s: float) -> dict[str, Any]:
        n = self.args.slow_clients or max(20, self.args.ws_clients // 10)
        self.event(f"fault: {n} slow ws clients (subscribe to every match player, never read)")
        socks: list[socket.socket] = []
        loop = asyncio.get_running_loop()
        sub = msgpack.packb({"op": "subscribe", "ids": self.instruments[:200]})
        for i in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, ("127.0.0.1", self.ports["ws"]))
                token = self.users[i % len(self.users)].token
                key = base64.b64encode(secrets.token_bytes(16)).decode()
                await loop.sock_sendall(
                    sock,
                    (
                        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"Authorization: Bearer {token}\r\n\r\n"
                    ).encode(),
                )
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
                    if not chunk:
                        break
                    head += chunk
                await loop.sock_sendall(sock, ws_frame(sub))
                socks.append(sock)
            except (TimeoutError, OSError):
                sock.close()
        self.event(f"{len(socks)} slow clients connected; holding {hold_s:.0f} s")
        await asyncio.sleep(hold_s)
        dropped = 0
        for sock in socks:
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        dropped += 1
                        break
            except BlockingIOError:
                pass
            except OSError:
                dropped += 1
            sock.close()
        self.event(f"slow clients: {dropped} of {len(socks)} already dropped by the server")
        return {"clients": len(socks), "dropped_by_server": dropped, "hold_s": hold_s}

    # -- ws workers -------------------------------------------------------------------------------

    def start_ws_workers(self) -> list[tuple[subprocess.Popen[bytes], Path]]:
        n = self.args.ws_clients
        if n <= 0:
            return []
        procs = self.args.ws_procs or (1 if n <= 300 else 2)
        out = []
        for w in range(procs):
            count = n // procs + (1 if w < n % procs else 0)
            spec = {
                "url": f"ws://127.0.0.1:{self.ports['ws']}/ws",
                "tokens": [u.token for u in self.users],
                "ids": self.instruments,
                "subs": self.args.ws_subs,
                "clients": count,
                "seed": self.args.seed * 100 + w,
                "out": str(self.work / f"ws-worker-{w}.json"),
            }
            spec_path = self.work / f"ws-worker-{w}.spec.json"
            spec_path.write_text(json.dumps(spec))
            with open(self.logs / f"ws-worker-{w}.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "scripts.matchday", "--ws-worker", str(spec_path)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_child_setup(None, None),
                )
            out.append((proc, Path(spec["out"])))
        return out

    # -- the day ----------------------------------------------------------------------------------

    async def run(self) -> int:
        a = self.args
        try:
            await self.start_servers()
            n_informed = max(1, a.informed) if a.users >= 4 else 0
            for i in range(a.users):
                strategy = "informed" if i < n_informed else STRATEGIES[i % 3]
                self.users.append(User(i, strategy, user_ip(i), i % 2, str(10**15 + a.seed * 10**6 + i)))
            sem = asyncio.Semaphore(32)

            async def login(u: User) -> None:
                async with sem:
                    await self.login(u)

            t = time.monotonic()
            await asyncio.gather(*(login(u) for u in self.users))
            self.event(
                f"{len(self.users)} users signed in with Google ID tokens in {time.monotonic() - t:.1f} s"
            )
            workers = self.start_ws_workers()
            observers = [asyncio.create_task(self.observe()), asyncio.create_task(self.watch_market())]
            self.start_t = time.monotonic()
            self.set_phase("before faults" if not a.no_faults else "steady")
            users = [asyncio.create_task(self.run_user(u)) for u in self.users]
            fault_task = None if a.no_faults else asyncio.create_task(self.faults())
            await asyncio.sleep(a.duration)
            if fault_task is not None and not fault_task.done():
                self.event("faults still running at the end of --duration; waiting for them")
                await fault_task
            elif fault_task is not None:
                fault_task.result()
            self.end_t = time.monotonic()
            self.stop.set()
            await asyncio.gather(*users)
            self.set_phase("wind-down")
            await self.wind_down()
            self.phase_log.append((time.monotonic(), "end"))
            for proc, _ in workers:
                proc.send_signal(signal.SIGTERM)
            ws_stats = []
            for proc, path in workers:
                try:
                    await asyncio.to_thread(proc.wait, 60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                if path.exists():
                    ws_stats.append(json.loads(path.read_text()))
            for task in observers:
                task.cancel()
            await asyncio.gather(*observers, return_exceptions=True)
            for user in self.users:
                user.close()
            # stop the price feed and the apis: the audit then sees a quiet system
            for role in (*self.apis, self.ws):
                await asyncio.to_thread(role.stop)
            drain_s = await self.drain()
            checks, audit_out = await self.verify()
            print(self.report(ws_stats, drain_s, checks, audit_out))
            return 0 if all(ok for _, ok, _ in checks) else 1
        finally:
            await self.shutdown()
            if not a.keep:
                import shutil

                shutil.rmtree(self.work, ignore_errors=True)
            else:
                print(f"kept {self.work}")

    async def drain(self) -> float:
        client = aioredis.Redis.from_url(self.redis_url)
        t = time.monotonic()
        try:
            while time.monotonic() - t < 120:
                if (
                    int(await client.xlen(self.keys.outbox)) == 0
                    and int(await client.scard(self.keys.dirty)) == 0
                ):
                    break
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()
        return time.monotonic() - t

    # -- invariants -------------------------------------------------------------------------------

    async def verify(self) -> tuple[list[tuple[str, bool, str]], str]:
        checks: list[tuple[str, bool, str]] = []
        env = {**self.env, "FTL_ENV": "production"}
        out = await asyncio.to_thread(run_once, ["audit", "--wait", "60"], env, 300)
        audit_out = out.stdout + out.stderr
        checks.append(
            (
                "ftl audit exits 0 (Redis = PostgreSQL, ledger replays, conservation)",
                out.returncode == 0 and "RESULT: OK" in out.stdout,
                f"exit {out.returncode}",
            )
        )
        async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
            ids = list(self.confirmed)
            cur = await conn.execute(
                "SELECT id, user_id, kind, side, qty, price, fee, margin, idempotency_key FROM trades "
                "WHERE id = ANY(%s)",
                (ids,),
            )
            rows = {r[0]: r for r in await cur.fetchall()}
            missing = [t for t in ids if t not in rows]
            differ = [
                t
                for t, c in self.confirmed.items()
                if t in rows
                and rows[t][1:] != (c.user_id, c.kind, c.side, c.qty, c.price, c.fee, c.margin, c.key)
            ]
            checks.append(
                (
                    "every confirmed trade is in PostgreSQL exactly once, as confirmed",
                    not missing and not differ,
                    f"{len(ids)} confirmed, {len(missing)} missing {missing[:5]}, "
                    f"{len(differ)} differ {differ[:5]}",
                )
            )
            cur = await conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM trades WHERE idempotency_key IS NOT NULL "
                "GROUP BY user_id, idempotency_key HAVING count(*) > 1) d"
            )
            dup = (await cur.fetchone() or (0,))[0]
            by_key: dict[tuple[int, str], int] = {}
            cur = await conn.execute(
                "SELECT user_id, idempotency_key, id FROM trades WHERE idempotency_key IS NOT NULL"
            )
            for uid, key, tid in await cur.fetchall():
                by_key[(uid, key)] = tid
            wrong_key = [k for k, tid in self.key_trade.items() if by_key.get(k) != tid]
            checks.append(
                (
                    "one trade per idempotency key (PostgreSQL, and every reply to a key)",
                    dup == 0 and not wrong_key and not self.key_conflicts,
                    f"{len(self.key_trade)} keys confirmed, {dup} duplicated in PostgreSQL, "
                    f"{len(wrong_key)} keyed to another trade, {len(self.key_conflicts)} replies disagree",
                )
            )
            cur = await conn.execute("SELECT sum(available + locked), sum(granted), count(*) FROM wallets")
            total, granted, wallets = await cur.fetchone() or (0, 0, 0)
            house_row = await (
                await conn.execute("SELECT available, locked FROM wallets WHERE user_id = 0")
            ).fetchone()
            checks.append(
                (
                    "money conserved: sum(available + locked) incl. house = sum(granted)",
                    total == granted,
                    f"{wallets} wallets, held {total}, granted {granted}, house {house_row}",
                )
            )
            cur = await conn.execute(
                "SELECT count(*) FROM wallets WHERE user_id <> 0 AND (available < 0 OR locked < 0)"
            )
            neg_pg = (await cur.fetchone() or (0,))[0]
            redis = aioredis.Redis.from_url(self.redis_url)
            try:
                pipe = redis.pipeline(transaction=False)
                for u in self.users:
                    pipe.hmget(self.keys.wallet(u.user_id), "available", "locked")
                neg_redis = sum(
                    1 for v in await pipe.execute() if any(x is not None and int(x) < 0 for x in v)
                )
                cur = await conn.execute(
                    "SELECT i.id, i.skew, coalesce(sum(CASE WHEN p.side = 'long' THEN p.qty ELSE -p.qty END) "
                    "FILTER (WHERE p.status = 'open'), 0) FROM instruments i LEFT JOIN cfd_positions p "
                    "ON p.instrument_id = i.id GROUP BY i.id"
                )
                skew_rows = await cur.fetchall()
                pipe = redis.pipeline(transaction=False)
                for iid, _, _ in skew_rows:
                    pipe.hget(self.keys.instrument(iid), "skew")
                redis_skews = await pipe.execute()
            finally:
                await redis.aclose()
            checks.append(
                (
                    "no negative balance (PostgreSQL and Redis)",
                    neg_pg == 0 and neg_redis == 0,
                    f"{neg_pg} in PostgreSQL, {neg_redis} in Redis",
                )
            )
            bad_skew = [
                (iid, skew, expect, rs)
                for (iid, skew, expect), rs in zip(skew_rows, redis_skews, strict=True)
                if skew != expect or (rs is not None and int(rs) != expect)
            ]
            nonzero = sum(1 for _, _, e in skew_rows if e)
            checks.append(
                (
                    "skew = sum(open long) - sum(open short) per instrument (PostgreSQL and Redis)",
                    not bad_skew,
                    f"{len(skew_rows)} instruments ({nonzero} with open interest), {len(bad_skew)} differ "
                    f"{bad_skew[:3]}",
                )
            )
        bad_fill = [
            t
            for t, c in self.confirmed.items()
            if (c.price > c.acceptable if buys(c) else c.price < c.acceptable)
        ]
        checks.append(
            (
                "every confirmed fill within the client's acceptable price",
                not bad_fill,
                f"{len(bad_fill)} outside {bad_fill[:5]}",
            )
        )
        errors = {k: n for k, n in self.statuses.items() if k.startswith("500") or k.startswith("client_bug")}
        checks.append(("no 500 reply (and no client bug)", not errors, str(errors or "none")))
        return checks, audit_out

    # -- the report -------------------------------------------------------------------------------

    def report(
        self, ws_stats: list[dict[str, Any]], drain_s: float, checks: list[tuple[str, bool, str]], audit: str
    ) -> str:
        a = self.args
        lines = ["", "=" * 100, "FTL MATCH DAY REPORT", "=" * 100]
        lines.append(
            f"command: python -m scripts.matchday --users {a.users} --ws-clients {a.ws_clients} "
            f"--duration {a.duration:g} --speed {a.speed:g} --seed {a.seed}"
            + (" --no-faults" if a.no_faults else "")
        )
        lines.append(
            "shape: api x2, ws x1 (2 workers), flusher x1, "
            f"Redis {'embedded' if not a.redis_url else 'given'}, "
            f"PostgreSQL {'embedded' if not a.database_url else 'given'}, FTL_ENV=production, "
            f"replay x{a.speed:g} ({self.replay.duration_s / a.speed:.0f} s for the whole match), "
            f"{len(self.instruments)} match players; machine: {os.cpu_count()} CPUs"
        )
        strat = Counter(u.strategy for u in self.users)
        lines.append(f"users: {dict(strat)}; think time mean {a.think:g} s")
        span = self.end_t - self.start_t
        ok = [s for s in self.samples if s[3]]
        lines.append("")
        lines.append(
            f"trades confirmed: {len(self.confirmed)} in {span:.0f} s = {len(ok) / span:.1f} trades/s "
            f"(requests incl. retries: {len(self.samples)})"
        )
        lines.append(f"replies: {dict(sorted(self.statuses.items(), key=lambda kv: -kv[1]))}")
        lines.append("")
        lines.append("trade latency by phase (2xx, ms, from the client: send -> reply)")
        lines.append(
            f"  {'phase':<32}{'secs':>7}{'2xx':>8}{'2xx/s':>8}{'other':>8}{'p50':>9}{'p95':>9}{'p99':>9}"
        )
        for (t, name), (t2, _) in itertools.pairwise(self.phase_log):
            if name in ("warm-up", "end"):
                continue
            secs = max(t2 - t, 1e-9)
            ph = [s for s in self.samples if s[0] == name]
            lat = [s[2] for s in ph if s[3]]
            lines.append(
                f"  {name:<32}{secs:>7.1f}{len(lat):>8}{len(lat) / secs:>8.1f}{len(ph) - len(lat):>8}"
                f"{pct(lat, 50):>9.1f}{pct(lat, 95):>9.1f}{pct(lat, 99):>9.1f}"
            )
        lines.append("")
        if self.fault_results:
            fr = self.fault_results
            rec = fr.get("redis_recovery_s")
            lines.append(
                "recovery: Redis kill -> first confirmed trade "
                + (f"{rec:.2f} s" if rec is not None else "n/a")
                + f"; api kill -9 -> restarted ready {fr.get('api_restart_s', float('nan')):.1f} s"
                + f"; flusher kill -9 -> ready {fr.get('flusher_restart_s', float('nan')):.1f} s"
                + f"; replay leader {fr.get('leader', 'n/a')}"
            )
            slow = self.fault_results.get("slow")
            if slow:
                lines.append(
                    f"slow ws clients: {slow['clients']} connected, {slow['dropped_by_server']} "
                    f"dropped by the server within {slow['hold_s']:.0f} s"
                )
        ages = [x[1] for x in self.lag]
        lines.append(
            "flusher lag (age of the oldest trade in the outbox, sampled every 0.5 s): "
            f"p50 {pct(ages, 50):.2f} s, "
            f"p95 {pct(ages, 95):.2f} s, max {max(ages, default=0):.2f} s; outbox max "
            f"{max((x[2] for x in self.lag), default=0)} entries; drained {drain_s:.2f} s after the end"
        )
        lines.append("")
        lines.extend(self.ws_report(ws_stats))
        lines.append("")
        lines.extend(self.informed_report())
        lines.append("")
        lines.append("events:")
        lines.extend(f"  [{t:7.1f}s] {text}" for t, text in self.events)
        lines.append("")
        lines.append("ftl audit:")
        lines.extend(f"  {line}" for line in audit.strip().splitlines())
        lines.append("")
        for name, good, detail in checks:
            lines.append(f"INVARIANT {'PASS' if good else 'FAIL'}: {name} -- {detail}")
        lines.append(f"RESULT: {'PASS' if all(g for _, g, _ in checks) else 'FAIL'}")
        return "\n".join(lines)

    def ws_report(self, stats: list[dict[str, Any]]) -> list[str]:
        if not stats:
            return ["ws: no ws clients"]
        total = Counter[str]()
        lat_by_phase: dict[str, list[float]] = defaultdict(list)
        wall0 = time.time() - time.monotonic()  # monotonic -> wall
        phases = [(t + wall0, name) for t, name in self.phase_log]
        codes: Counter[str] = Counter()
        for s in stats:
            for k in (
                "deliveries",
                "snapshots",
                "status_only",
                "reconnects",
                "gaps",
                "connected",
                "failed_connects",
            ):
                total[k] += int(s.get(k, 0))
            codes.update(s.get("close_codes", {}))
            for sec, lats in s["buckets"].items():
                i = bisect.bisect_right([p[0] for p in phases], float(sec)) - 1
                lat_by_phase[phases[i][1] if i >= 0 else "warm-up"].extend(lats)
        all_lat = [x for v in lat_by_phase.values() for x in v]
        out = [
            f"ws: {self.args.ws_clients} clients x {self.args.ws_subs} subscriptions "
            f"in {len(stats)} processes; "
            f"{total['connected']} connected at the end; {total['deliveries']} PRICE_UPDATE delivered "
            f"(+{total['snapshots']} snapshots, +{total['status_only']} status-only), "
            f"{total['gaps']} seq gaps (conflation/Redis loss), "
            f"{total['reconnects']} reconnects, close codes {dict(codes)}",
            f"ws publish -> receipt (PRICE_UPDATE ts vs client clock, ms): p50 {pct(all_lat, 50):.1f}, "
            f"p95 {pct(all_lat, 95):.1f}, p99 {pct(all_lat, 99):.1f} (sampled {len(all_lat)})",
        ]
        for _, name in self.phase_log:
            lat = lat_by_phase.get(name)
            if lat:
                out.append(
                    f"  {name:<32} p50 {pct(lat, 50):7.1f}  p95 {pct(lat, 95):7.1f}  p99 {pct(lat, 99):7.1f}"
                )
        return out

    def informed_report(self) -> list[str]:
        informed = {u.user_id for u in self.users if u.strategy == "informed"}
        if not informed:
            return ["informed trader: none"]
        mine = [c for c in self.confirmed.values() if c.user_id in informed]
        pnl = sum(c.realised_pnl for c in mine)
        fees = sum(c.fee for c in mine)
        others = [c for c in self.confirmed.values() if c.user_id not in informed]
        o_users = max(1, len(self.users) - len(informed))
        return [
            f"informed trader ({len(informed)}, sees ratings {self.args.informed_lead:g} s ahead): "
            f"{len(mine)} trades, realised PnL {pnl / 100:+,.2f}, fees paid {fees / 100:,.2f}, "
            f"net {(pnl - fees) / 100:+,.2f} (PnL/fees {pnl / fees if fees else float('nan'):.1f}x)",
            "everyone else (per user): realised PnL "
            f"{sum(c.realised_pnl for c in others) / o_users / 100:+,.2f}, "
            f"fees {sum(c.fee for c in others) / o_users / 100:,.2f}",
        ]


def buys(c: Confirmed) -> bool:
    """Opening a long or closing a short buys (fill <= acceptable)."""
    return (c.kind == "open") == (c.side == "long")


def ws_frame(payload: bytes) -> bytes:
    """A masked (zero key) binary client frame."""
    n = len(payload)
    head = bytes((0x82, 0x80 | n)) if n < 126 else bytes((0x82, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


# ---------------------------------------------------------------------------------------------
# ws worker process: many clients, per-second latency samples


async def ws_worker(spec_path: str) -> None:
    from websockets.asyncio.client import connect

    spec = json.loads(Path(spec_path).read_text())
    rng = random.Random(spec["seed"])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    stats: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    buckets: dict[int, list[float]] = defaultdict(list)
    counts: Counter[int] = Counter()
    live: set[int] = set()

    async def client(i: int) -> None:
        ids = rng.sample(spec["ids"], min(spec["subs"], len(spec["ids"])))
        token = spec["tokens"][i % len(spec["tokens"])]
        last: dict[int, int] = {}
        state: dict[int, tuple[Any, Any]] = {}
        first = True
        while not stop.is_set():
            try:
                async with connect(
                    spec["url"],
                    additional_headers={"Authorization": f"Bearer {token}"},
                    compression=None,
                    open_timeout=20,
                ) as ws:
                    if not first:
                        stats["reconnects"] += 1
                    first = False
                    live.add(i)
                    await ws.send(msgpack.packb({"op": "subscribe", "ids": ids}))
                    while not stop.is_set():
                        try:
                            frame = await asyncio.wait_for(ws.recv(), 1.0)
                        except TimeoutError:
                            continue
                        received = time.time()
                        msg = msgpack.unpackb(frame)
                        if msg.get("type") != "PRICE_UPDATE":
                            continue
                        iid, seq = int(msg["id"]), int(msg["seq"])
                        moved = state.get(iid) != (msg.get("index"), msg.get("skew"))
                        state[iid] = (msg.get("index"), msg.get("skew"))
                        if msg.get("snap"):
                            stats["snapshots"] += 1
                        elif not moved:  # a status-only change (halt, resume): ts is the index's time
                            stats["status_only"] += 1
                        else:
                            stats["deliveries"] += 1
                            if iid in last and seq > last[iid] + 1:
                                stats["gaps"] += 1
                            sec = int(received)
                            counts[sec] += 1
                            b = buckets[sec]
                            lat = received * 1000 - float(msg["ts"])
                            if len(b) < 300:
                                b.append(lat)
                            else:
                                j = rng.randrange(counts[sec])
                                if j < 300:
                                    b[j] = lat
                        last[iid] = max(seq, last.get(iid, -1))
            except Exception as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                codes[str(code if code is not None else type(exc).__name__)] += 1
                if first:
                    stats["failed_connects"] += 1
            finally:
                live.discard(i)
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rng.uniform(0.2, 1.0))

    tasks = []
    for i in range(spec["clients"]):
        tasks.append(asyncio.create_task(client(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await stop.wait()
    stats["connected"] = len(live)
    await asyncio.wait(tasks, timeout=10)
    for t in tasks:
        t.cancel()
    Path(spec["out"]).write_text(
        json.dumps({**stats, "close_codes": codes, "buckets": {str(k): v for k, v in buckets.items()}})
    )


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="matchday", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--users", type=int, default=200, help="simulated users (default 200)")
    p.add_argument("--ws-clients", type=int, default=400, help="WebSocket clients (default 400)")
    p.add_argument("--duration", type=float, default=120.0, help="seconds of trading (default 120)")
    p.add_argument("--speed", type=float, default=10.0, help="replay speed, FTL_REPLAY_SPEED (default 10)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--no-faults", action="store_true", help="no fault injection")
    p.add_argument(
        "--think", type=float, default=1.0, help="mean seconds between a user's actions (default 1)"
    )
    p.add_argument("--informed", type=int, default=1, help="informed traders (default 1)")
    p.add_argument(
        "--informed-lead", type=float, default=4.0, help="seconds the informed trader sees ahead (default 4)"
    )
    p.add_argument("--ws-subs", type=int, default=5, help="subscriptions per ws client (default 5)")
    p.add_argument("--ws-procs", type=int, default=0, help="ws client processes (default: 1, or 2 above 300)")
    p.add_argument("--slow-clients", type=int, default=0, help="slow ws clients in the burst (default ws/10)")
    p.add_argument(
        "--redis-url", default=None, help="use this Redis (no Redis kill) instead of an embedded one"
    )
    p.add_argument("--database-url", default=None, help="create a fresh database on this PostgreSQL server")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    p.add_argument("--ws-worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ws_worker:
        asyncio.run(ws_worker(args.ws_worker))
        return 0
    from ftl import logs

    logs.configure("console", "warning")
    return asyncio.run(MatchDay(args).run())


if __name__ == "__main__":
    sys.exit(main())
