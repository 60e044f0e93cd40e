"""Trade benchmark at production settings: FTL's api process on a durable PostgreSQL, then the same
run on an embedded PostgreSQL with fsync off (the dev default), for comparison.

    .venv/bin/python -m scripts.bench_trade [--targets durable,fsync-off] [--rates 300,1000]
        [--seconds 10] [--users 2000] [--instruments 5] [--batch-max N] [--batch-wait-ms MS]
        [--baseline] [--profile PATH] [--loop uvloop|asyncio]

Targets (scripts/benchsupport.py):

- ``durable``: a fresh database ``ftl_bench_<hex>`` on the machine's own PostgreSQL
  (postgresql://postgres@127.0.0.1:5432, trust auth), dropped at the end; or FTL_BENCH_DATABASE_URL
  as given. ``SHOW fsync`` / ``SHOW synchronous_commit`` are printed (a warning if not both on).
- ``fsync-off``: an embedded PostgreSQL (fsync=off, full_page_writes=off) under a temp dir.

Redis is embedded for each target, or FTL_BENCH_REDIS_URL (keys under a unique prefix, deleted
at the end). Per target: seeds a few hot instruments and many users, starts ``ftl run --role=api``
as its own process (FTL_LEDGER_BATCH_MAX / FTL_LEDGER_BATCH_WAIT_MS from --batch-max /
--batch-wait-ms, else the api's defaults) and drives it with random users opening and closing
positions: open loop at each of --rates (latency from the scheduled send time, so queueing
counts), then a closed loop of 64 connections (saturation) with ``ftl run --role=flusher``
running beside it. Each phase reports trades/s filled (2xx), p50/p95/p99 latency (all replies),
CPU µs per filled trade of the api, the PostgreSQL server (postmaster and all its children), Redis
(INFO cpu), the flusher and this load generator, the busiest of them, and Lua µs per call (INFO
commandstats). During saturation the flusher lag is sampled every 50 ms: the unsettled age
(ftl.worker.flusher.unsettled_age_s; until it exists, the oldest outbox entry's age).
Then the ratio durable / fsync-off of the saturation throughput.

--baseline adds, per target, the same workload against scripts/bench_baseline.py (open/close in
PostgreSQL alone). Process logs go to a temp dir (printed; removed when all are empty).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis

from ftl import config, logs
from ftl.persistence.hot import start_used_keys
from ftl.persistence.processes import free_port
from ftl.persistence.recovery import rebuild
from ftl.persistence.stores import Stores
from ftl.trading.seed import InstrumentSeed, seed
from scripts.bench_auth import JWT_KEYS, mint_tokens
from scripts.benchsupport import (
    POSTGRES_KINDS,
    BenchServers,
    Child,
    PostgresKind,
    Probe,
    UnsettledAge,
    bench_servers,
    cpu_delta,
    cpu_snapshot,
    is_durable,
    other_databases_xacts,
    pct,
    pg_settings,
    postmaster_pid,
    process_probe,
    redis_probe,
    self_probe,
)
from scripts.loadgen import Connection, PhaseResult, closed_loop, open_loop

ROOT = Path(__file__).resolve().parent.parent
SATURATION_CONNECTIONS = 64
LAG_INTERVAL_S = 0.05
CPU_COLUMNS = ("api", "postgres", "redis", "flusher", "bench")


class Workload:
    """Random users open and close positions on a few hot instruments."""

    def __init__(self, tokens: dict[int, str], instruments: list[int], seed_: int = 7) -> None:
        self.tokens = tokens
        self.users = list(tokens)
        self.instruments = instruments
        self.rng = random.Random(seed_)
        self.open: dict[int, list[tuple[int, str]]] = {u: [] for u in self.users}  # (position, side)
        self.busy: set[int] = set()
        self.errors: dict[int, Any] = {}  # the first error body of each status, for the report

    async def op(self, conn: Connection) -> int:
        user = self.rng.choice(self.users)
        while user in self.busy:  # one request per user at a time, like a person clicking
            await asyncio.sleep(0)
            user = self.rng.choice(self.users)
        self.busy.add(user)
        try:
            headers = {
                "Authorization": f"Bearer {self.tokens[user]}",
                "Idempotency-Key": secrets.token_hex(8),
            }
            if self.open[user] and self.rng.random() < 0.5:
                pid, held = self.open[user].pop()
                # closing a long sells (any price will do), closing a short buys back (any price)
                worst = 1 if held == "long" else 1_000_000_000
                status, reply = await conn.request(
                    "POST", f"/api/positions/{pid}/close", headers, {"acceptable_price": worst}
                )
            else:
                side = self.rng.choice(("long", "short"))
                body = {
                    "instrument_id": self.rng.choice(self.instruments),
                    "side": side,
                    "qty": self.rng.randint(1, 5),
                    "leverage": 2,
                    "acceptable_price": 1_000_000_000 if side == "long" else 1,
                }
                status, reply = await conn.request("POST", "/api/positions/open", headers, body)
                if status == 201:
                    self.open[user].append((int(reply["position"]["id"]), side))
            if status >= 400 and status not in self.errors:
                self.errors[status] = reply
            return status
        finally:
            self.busy.discard(user)


@dataclass
class Phase:
    result: PhaseResult
    cpu: dict[str, float | None]  # CPU seconds over the phase, by process
    lua_us: float
    other_xacts: int | None  # transactions of the PostgreSQL server's other databases meanwhile

    @property
    def filled(self) -> int:
        return sum(n for status, n in self.result.statuses.items() if 200 <= status < 300)

    @property
    def filled_rate(self) -> float:
        return self.filled / self.result.seconds if self.result.seconds else 0.0

    def us_per_trade(self, name: str) -> float | None:
        cpu = self.cpu.get(name)
        return None if cpu is None or not self.filled else cpu * 1e6 / self.filled

    def busiest(self) -> tuple[str, float] | None:
        """The process with the most CPU over the phase, and how many cores it used."""
        used = {k: v for k, v in self.cpu.items() if v is not None}
        if not used or not self.result.seconds:
            return None
        name = max(used, key=lambda k: used[k])
        return name, used[name] / self.result.seconds


@dataclass
class Lag:
    source: str
    samples: list[float] = field(default_factory=list)  # seconds
    catch_up_s: float | None = None  # until the open-loop phases' backlog was settled
    drain_s: float | None = None  # after the saturation phase, until all was settled


@dataclass
class TargetReport:
    target: PostgresKind
    where: str
    pg: dict[str, str]
    phases: list[Phase]
    lag: Lag | None
    errors: dict[int, Any]
    notes: list[str]
    baseline: list[Phase] | None = None

    @property
    def saturation(self) -> float:
        return self.phases[-1].filled_rate if self.phases else 0.0


async def _prepare(servers: BenchServers, users: int, instruments: int) -> tuple[dict[int, str], list[int]]:
    settings = config.load({}).replace(redis_prefix=servers.redis_prefix)
    stores = await Stores.open(settings, servers.redis_url, servers.database_url, migrate=True)
    try:
        base_id = 900_000 + random.randint(0, 90_000) * 10
        seeds = [
            InstrumentSeed(base_id + i, base_id + i, f"Hot Player {i}", "Bench", "FW", index_price=1_000)
            for i in range(instruments)
        ]
        await seed(stores, seeds)
        async with stores.pg.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO users (email, name) SELECT 'bench' || g || '-' || %s || '@x.test', "
                "'bench' FROM generate_series(1, %s) g RETURNING id",
                (secrets.token_hex(4), users),
            )
            ids = [r[0] for r in await cur.fetchall()]
            await conn.execute(
                "INSERT INTO wallets (user_id, available, granted) "
                "SELECT unnest(%s::bigint[]), 100000000, 100000000",
                (ids,),
            )
        await rebuild(stores)  # hot state as the flusher builds it at start
        for user_id in ids:  # what a new user's first login does: no key of his in PostgreSQL
            await start_used_keys(stores, user_id)
        return mint_tokens(ids), [s.id for s in seeds]
    finally:
        await stores.close()


async def _lua_usec(redis_url: str) -> float:
    client = aioredis.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
        return float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", float("nan")))
    finally:
        await client.aclose()


async def _reset_stats(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.config_resetstat()
    finally:
        await client.aclose()


async def _measure(
    run: Callable[[], Awaitable[PhaseResult]], probes: dict[str, Probe], servers: BenchServers
) -> Phase:
    await _reset_stats(servers.redis_url)
    xacts0 = await other_databases_xacts(servers.database_url)
    cpu0 = await cpu_snapshot(probes)
    result = await run()
    cpu1 = await cpu_snapshot(probes)
    xacts1 = await other_databases_xacts(servers.database_url)
    others = None if xacts0 is None or xacts1 is None else xacts1 - xacts0
    return Phase(result, cpu_delta(cpu0, cpu1), await _lua_usec(servers.redis_url), others)


class LagMeter:
    """Samples the flusher's lag (benchsupport.UnsettledAge) into a Lag."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.age_of = UnsettledAge()
        self.lag = Lag(self.age_of.source)

    async def age(self) -> float:
        age = await self.age_of(self.stores)
        self.lag.source = self.age_of.source
        return age

    async def settle(self, limit_s: float, below_s: float) -> float | None:
        """Seconds until the age is at most ``below_s``; None if not within ``limit_s``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            if await self.age() <= below_s:
                return time.monotonic() - t0
            await asyncio.sleep(LAG_INTERVAL_S)
        return None

    async def sample(self, stop: asyncio.Event) -> None:
        """One sample every LAG_INTERVAL_S (on a fixed schedule) until ``stop``."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while not stop.is_set():
            self.lag.samples.append(await self.age())
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, start + n * LAG_INTERVAL_S - loop.time()))


def _env(servers: BenchServers, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    env.update(
        {
            "FTL_REDIS_URL": servers.redis_url,
            "FTL_DATABASE_URL": servers.database_url,
            "FTL_REDIS_PREFIX": servers.redis_prefix,
            "FTL_FEED": "off",
            "FTL_LOG_LEVEL": "warning",
            "FTL_JWT_KEYS": JWT_KEYS,
            "FTL_EVENT_LOOP": args.loop,
            "FTL_DRAIN_S": "0",
            "FTL_SEED_DEMO": "0",
        }
    )
    if args.batch_max is not None:
        env["FTL_LEDGER_BATCH_MAX"] = str(args.batch_max)
    if args.batch_wait_ms is not None:
        env["FTL_LEDGER_BATCH_WAIT_MS"] = str(args.batch_wait_ms)
    return env


def _start_profiler(path: str, pid: int, log_dir: Path) -> Child | None:
    if shutil.which("py-spy") is None:
        print("--profile: py-spy is not installed (pip install py-spy); not profiling")
        return None
    argv = ["py-spy", "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", path, "-p", str(pid)]
    return Child.start(f"py-spy-{pid}", argv, os.environ, ROOT, log_dir)


async def _baseline(
    servers: BenchServers,
    env: dict[str, str],
    tokens: dict[int, str],
    instruments: list[int],
    rates: list[int],
    args: argparse.Namespace,
    probes: dict[str, Probe],
    log_dir: Path,
    notes: list[str],
) -> list[Phase]:
    port = free_port()
    argv = [sys.executable, "-m", "scripts.bench_baseline", "--database-url", servers.database_url]
    base = Child.start(f"baseline-{servers.postgres}", [*argv, "--port", str(port)], env, ROOT, log_dir)
    try:
        base.wait_http(f"http://127.0.0.1:{port}/healthz")
        work = Workload(tokens, instruments, seed_=8)
        # the baseline server in the "api" column; no Redis, no flusher
        probes = {"api": process_probe(base.pid)} | {
            k: p for k, p in probes.items() if k in ("postgres", "bench")
        }
        out = []
        for rate in rates:
            out.append(
                await _measure(
                    partial(open_loop, f"baseline @{rate}/s", "127.0.0.1", port, work.op, rate, args.seconds),
                    probes,
                    servers,
                )
            )
        out.append(
            await _measure(
                lambda: closed_loop(
                    "baseline saturation", "127.0.0.1", port, work.op, SATURATION_CONNECTIONS, args.seconds
                ),
                probes,
                servers,
            )
        )
        return out
    finally:
        base.stop()
        summary = base.summary()
        if summary:
            notes.append(f"{base.name} ({base.log_path}): {summary}")


async def run_target(
    target: PostgresKind, args: argparse.Namespace, rates: list[int], log_dir: Path
) -> TargetReport:
    prefix = f"bench{secrets.token_hex(3)}:"
    servers = await bench_servers(f"ftl-bench-{target}-", target, redis_prefix=prefix)
    children: list[Child] = []
    try:
        pg = await pg_settings(servers.database_url, ("fsync", "synchronous_commit", "full_page_writes"))
        where = servers.database_label
        shown = ", ".join(f"{k}={v}" for k, v in pg.items())
        print(f"\n[{target}] PostgreSQL: {where}: {shown}", flush=True)
        notes: list[str] = []
        if target == "durable" and not is_durable(pg):
            notes.append(f"WARNING: the 'durable' target is not durable ({shown})")
            print(notes[-1])
        tokens, instruments = await _prepare(servers, args.users, args.instruments)
        env = _env(servers, args)
        port = free_port()
        api = Child.start(
            f"api-{target}",
            [sys.executable, "-m", "ftl", "run", "--role=api"],
            {**env, "FTL_API_PORT": str(port)},
            ROOT,
            log_dir,
        )
        children.append(api)
        api.wait_http(f"http://127.0.0.1:{port}/readyz")
        probes: dict[str, Probe] = {"api": process_probe(api.pid)}
        postmaster = await postmaster_pid(servers.database_url)
        if postmaster is not None:
            probes["postgres"] = process_probe(postmaster)
        else:
            notes.append("PostgreSQL CPU: n/a (postmaster.pid of SHOW data_directory not readable here)")
        probes["redis"] = redis_probe(servers.redis_url)
        probes["bench"] = self_probe()
        if args.profile:
            path = args.profile if len(args.target_list) == 1 else f"{args.profile}.{target}"
            spy = _start_profiler(path, api.pid, log_dir)
            if spy is not None:
                children.append(spy)
        work = Workload(tokens, instruments)
        phases = []
        for rate in rates:
            phases.append(
                await _measure(
                    partial(open_loop, f"@{rate}/s", "127.0.0.1", port, work.op, rate, args.seconds),
                    probes,
                    servers,
                )
            )
            print(f"[{target}] @{rate}/s done: {phases[-1].filled_rate:.0f} filled/s", flush=True)

        fport = free_port()
        flusher = Child.start(
            f"flusher-{target}",
            [sys.executable, "-m", "ftl", "run", "--role=flusher"],
            {**env, "FTL_FLUSHER_PORT": str(fport)},
            ROOT,
            log_dir,
        )
        children.append(flusher)
        flusher.wait_http(f"http://127.0.0.1:{fport}/readyz")
        probes["flusher"] = process_probe(flusher.pid)
        settings = config.load({}).replace(redis_prefix=prefix)
        stores = await Stores.open(settings, servers.redis_url, servers.database_url)
        try:
            meter = LagMeter(stores)
            meter.lag.catch_up_s = await meter.settle(limit_s=60, below_s=0.5)
            stop = asyncio.Event()
            sampler = asyncio.create_task(meter.sample(stop))
            try:
                phases.append(
                    await _measure(
                        lambda: closed_loop(
                            "saturation", "127.0.0.1", port, work.op, SATURATION_CONNECTIONS, args.seconds
                        ),
                        probes,
                        servers,
                    )
                )
            finally:
                stop.set()
                await sampler
            meter.lag.drain_s = await meter.settle(limit_s=30, below_s=0.0)
        finally:
            await stores.close()
        print(f"[{target}] saturation done: {phases[-1].filled_rate:.0f} filled/s", flush=True)
        for child in reversed(children):
            child.stop(sig=signal.SIGINT if child.name.startswith("py-spy") else signal.SIGTERM)
        report = TargetReport(target, where, pg, phases, meter.lag, work.errors, notes)
        if args.baseline:
            report.baseline = await _baseline(
                servers, env, tokens, instruments, rates, args, probes, log_dir, notes
            )
        for child in children:
            summary = child.summary()
            if summary:
                notes.append(f"{child.name} ({child.log_path}): {summary}")
        return report
    finally:
        for child in reversed(children):
            child.stop()
        await servers.close()


def _fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _table(phases: list[Phase], server: str) -> str:
    names = [server if n == "api" else n for n in CPU_COLUMNS]
    lines = [
        "| phase | target/s | 2xx/s | p50 ms | p95 ms | p99 ms | "
        + " | ".join(f"{n} µs" for n in names)
        + " | busiest (cores) | Lua µs/call | statuses |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(names) + "---|---:|---|",
    ]
    for p in phases:
        r = p.result
        target = "max" if r.target_rate is None else f"{r.target_rate:.0f}"
        busiest = p.busiest()
        top = "-" if busiest is None else f"{server if busiest[0] == 'api' else busiest[0]} {busiest[1]:.2f}"
        cpu = " | ".join(_fmt(p.us_per_trade(n)) for n in CPU_COLUMNS)
        lines.append(
            f"| {r.name} | {target} | {p.filled_rate:.0f} | {r.p50:.2f} | {r.pct(95):.2f} | "
            f"{r.pct(99):.2f} | {cpu} | {top} | {p.lua_us:.1f} | {dict(sorted(r.statuses.items()))} |"
        )
    return "\n".join(lines)


def _print_report(rep: TargetReport, args: argparse.Namespace) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in rep.pg.items())
    print(f"\n## {rep.target}: {rep.where} ({shown})\n")
    print(
        f"api `ftl run --role=api`; {args.users} users, {args.instruments} instruments, {args.seconds:g} s "
        f"per phase, saturation = {SATURATION_CONNECTIONS} connections with the flusher running. "
        "CPU columns: µs of CPU per filled (2xx) trade; busiest: most CPU over the phase, in cores.\n"
    )
    print(_table(rep.phases, "api"))
    busiest = rep.phases[-1].busiest()
    if busiest:
        print(f"\nbusiest process at saturation: {busiest[0]} ({busiest[1]:.2f} cores)")
    lag = rep.lag
    if lag is not None:
        ms = [s * 1000 for s in lag.samples]
        print(
            f"flusher lag at saturation ({lag.source}): p50 {pct(ms, 50):.0f} ms, "
            f"p99 {pct(ms, 99):.0f} ms, max {max(ms, default=float('nan')):.0f} ms, "
            f"{len(ms)} samples every {LAG_INTERVAL_S * 1000:.0f} ms; open-loop backlog settled in "
            f"{_fmt(lag.catch_up_s, 1)} s before it, all settled {_fmt(lag.drain_s, 1)} s after it "
            "('-': not within the limit)"
        )
    shared = [p.result.name for p in rep.phases if p.other_xacts]
    if shared:
        print(
            f"note: other databases of this PostgreSQL server ran transactions during {', '.join(shared)}: "
            "the postgres column includes their work"
        )
    if rep.errors:
        print(f"first error replies: {rep.errors}")
    for note in rep.notes:
        print(note)
    if rep.baseline:
        print(f"\nPostgreSQL-only baseline on the same database ({rep.target})\n")
        print(_table(rep.baseline, "baseline"))
        base = rep.baseline[-1].filled_rate
        ratio = f"{rep.saturation / base:.2f}x" if base else "n/a"
        print(f"\nsaturation ratio FTL / baseline ({rep.target}): {ratio}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="durable,fsync-off", help="durable, fsync-off or both")
    parser.add_argument("--rates", default="300,1000", help="open-loop arrival rates, trades/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--instruments", type=int, default=5)
    parser.add_argument(
        "--batch-max", type=int, default=None, help="FTL_LEDGER_BATCH_MAX of the api (its default: 64)"
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=None,
        help="FTL_LEDGER_BATCH_WAIT_MS of the api (its default: 1.0)",
    )
    parser.add_argument("--baseline", action="store_true", help="also the PostgreSQL-only baseline")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="PATH",
        help="py-spy the api process during the FTL phases (raw collapsed stacks; PATH.<target> "
        "with several targets)",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of the api and flusher processes (FTL_EVENT_LOOP)",
    )
    args = parser.parse_args()
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not names or any(t not in POSTGRES_KINDS for t in names):
        parser.error(f"--targets: choose from {', '.join(POSTGRES_KINDS)} (got {args.targets!r})")
    args.target_list = [cast(PostgresKind, t) for t in names]
    args.rate_list = [int(x) for x in args.rates.split(",") if x.strip()]
    return args


async def main() -> int:
    args = _parse()
    logs.configure("console", "warning")
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cleans up like ^C: databases dropped, processes stopped
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    batch = ", ".join(
        f"{name}={'(api default)' if value is None else value}"
        for name, value in (
            ("FTL_LEDGER_BATCH_MAX", args.batch_max),
            ("FTL_LEDGER_BATCH_WAIT_MS", args.batch_wait_ms),
        )
    )
    print(f"targets {', '.join(args.target_list)}; rates {args.rate_list}; {batch}", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="ftl-bench-logs-"))
    reports: dict[str, TargetReport] = {}
    failed = []
    try:
        for target in args.target_list:
            try:
                reports[target] = await run_target(target, args, args.rate_list, log_dir)
            except Exception as exc:  # report it, go on with the other target
                failed.append(target)
                print(f"\n[{target}] FAILED: {exc!r}", flush=True)
        for rep in reports.values():
            _print_report(rep, args)
        if "durable" in reports and "fsync-off" in reports:
            durable, fast = reports["durable"].saturation, reports["fsync-off"].saturation
            ratio = f"{durable / fast:.2f}" if fast else "n/a"
            print(
                f"\nsaturation throughput durable / fsync-off: {durable:.0f} / {fast:.0f} filled trades/s "
                f"= {ratio}"
            )
    finally:
        if any(p.stat().st_size for p in log_dir.iterdir()):
            print(f"\nprocess logs: {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        code = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):  # ^C or SIGTERM, after the cleanup
        code = 130
    sys.exit(code)
