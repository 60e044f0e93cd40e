"""Trade benchmark: FTL's api process against a PostgreSQL-only baseline, same workload, same run.

    .venv/bin/python -m scripts.bench_trade [--rates 250,500,1000,2000] [--seconds 10]

Starts Redis and PostgreSQL (embedded, or FTL_BENCH_REDIS_URL / FTL_BENCH_DATABASE_URL), seeds a
few hot instruments and many users, starts `ftl run --role=api` as its own process, and drives
it with an open-loop generator (fixed arrival rates) and a closed loop (saturation): random users
opening and closing positions on the hot instruments. Then the same against the baseline server
(scripts/bench_baseline.py). Prints achieved rate, p50/p95/p99 end-to-end latency, Lua time per
call (INFO commandstats), and the throughput ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from ftl import config, logs
from ftl.persistence.embedded import EmbeddedRedis
from ftl.persistence.migrations import migrate_sync
from ftl.persistence.processes import free_port
from ftl.stores import Stores
from ftl.trading.seed import InstrumentSeed, seed
from scripts.bench_auth import JWT_KEYS, mint_tokens
from scripts.benchsupport import bench_servers
from scripts.loadgen import Connection, PhaseResult, closed_loop, open_loop

ROOT = Path(__file__).resolve().parent.parent


class Workload:
    """Random users open and close positions on a few hot instruments."""

    def __init__(self, tokens: dict[int, str], instruments: list[int], seed_: int = 7) -> None:
        self.tokens = tokens
        self.users = list(tokens)
        self.instruments = instruments
        self.rng = random.Random(seed_)
        self.open: dict[int, list[int]] = {u: [] for u in self.users}
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
                pid = self.open[user].pop()
                status, _ = await conn.request(
                    "POST", f"/api/positions/{pid}/close", headers, {"acceptable_price": 1}
                )
                return status
            side = self.rng.choice(("long", "short"))
            body = {
                "instrument_id": self.rng.choice(self.instruments),
                "side": side,
                "qty": self.rng.randint(1, 5),
                "leverage": 2,
                "acceptable_price": 1_000_000_000 if side == "long" else 1,
            }
            status, reply = await conn.request("POST", "/api/positions/open", headers, body)
            if status >= 400 and status not in self.errors:
                self.errors[status] = reply
            if status == 201:
                self.open[user].append(int(reply["position"]["id"]))
            return status
        finally:
            self.busy.discard(user)

    async def close_only(self, conn: Connection) -> int:
        for user in self.rng.sample(self.users, len(self.users)):
            if self.open[user] and user not in self.busy:
                pid = self.open[user].pop()
                self.busy.add(user)
                try:
                    headers = {
                        "Authorization": f"Bearer {self.tokens[user]}",
                        "Idempotency-Key": secrets.token_hex(8),
                    }
                    status, _ = await conn.request(
                        "POST", f"/api/positions/{pid}/close", headers, {"acceptable_price": 1}
                    )
                    return status
                finally:
                    self.busy.discard(user)
        return 0


async def _prepare(
    redis_url: str, database_url: str, users: int, instruments: int, prefix: str
) -> tuple[dict[int, str], list[int]]:
    settings = config.load({}).replace(redis_prefix=prefix)
    stores = await Stores.open(settings, redis_url, database_url, migrate=True)
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
        from ftl.persistence.recovery import rebuild

        await rebuild(stores)  # hot state as the flusher builds it at start
        return mint_tokens(ids), [s.id for s in seeds]
    finally:
        await stores.close()


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


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


async def _phases(
    name: str, port: int, work: Workload, rates: list[int], seconds: float, redis_url: str | None
) -> list[tuple[PhaseResult, float]]:
    out = []
    for rate in rates:
        if redis_url:
            await _reset_stats(redis_url)
        res = await open_loop(f"{name} @{rate}/s", "127.0.0.1", port, work.op, rate, seconds)
        out.append((res, await _lua_usec(redis_url) if redis_url else float("nan")))
    if redis_url:
        await _reset_stats(redis_url)
    res = await closed_loop(f"{name} saturation", "127.0.0.1", port, work.op, 64, seconds)
    out.append((res, await _lua_usec(redis_url) if redis_url else float("nan")))
    return out


async def _lua_split(port: int, work: Workload, redis_url: str, seconds: float) -> tuple[float, float]:
    """evalsha usec_per_call with opens only, then closes only."""

    async def open_only(conn: Connection) -> int:
        # always open: temporarily hide open positions from the workload's coin flip
        saved = work.rng.random
        work.rng.random = lambda: 1.0  # type: ignore[method-assign]
        try:
            return await work.op(conn)
        finally:
            work.rng.random = saved  # type: ignore[method-assign]

    await _reset_stats(redis_url)
    await open_loop("opens", "127.0.0.1", port, open_only, 500, seconds)
    opens = await _lua_usec(redis_url)
    await _reset_stats(redis_url)
    await open_loop("closes", "127.0.0.1", port, work.close_only, 500, seconds)
    closes = await _lua_usec(redis_url)
    return opens, closes


def _table(rows: list[tuple[PhaseResult, float]]) -> str:
    lines = [
        "| phase | target/s | achieved/s | p50 ms | p95 ms | p99 ms | Lua µs/call | statuses |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r, lua in rows:
        target = "max" if r.target_rate is None else f"{r.target_rate:.0f}"
        lines.append(
            f"| {r.name} | {target} | {r.achieved:.0f} | {r.p50:.2f} | {r.pct(95):.2f} | "
            f"{r.pct(99):.2f} | {lua:.1f} | {dict(sorted(r.statuses.items()))} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="250,500,1000,2000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--instruments", type=int, default=5)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="PATH",
        help="py-spy the api process during the FTL phases (collapsed stacks)",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of the api process (FTL_EVENT_LOOP)",
    )
    args = parser.parse_args()
    rates = [int(x) for x in args.rates.split(",") if x]
    logs.configure("console", "warning")

    redis_url, database_url, servers = await bench_servers("ftl-bench-")
    migrate_sync(database_url)
    prefix = f"bench{secrets.token_hex(3)}:"
    try:
        tokens, instruments = await _prepare(redis_url, database_url, args.users, args.instruments, prefix)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
        env.update(
            {
                "FTL_REDIS_URL": redis_url,
                "FTL_DATABASE_URL": database_url,
                "FTL_API_PORT": str(port),
                "FTL_FEED": "off",
                "FTL_LOG_LEVEL": "warning",
                "FTL_JWT_KEYS": JWT_KEYS,
                "FTL_EVENT_LOOP": args.loop,
                "FTL_REDIS_PREFIX": prefix,
                "FTL_DRAIN_S": "0",
            }
        )
        api = subprocess.Popen([sys.executable, "-m", "ftl", "run", "--role=api"], env=env, cwd=ROOT)
        try:
            _wait_http(f"http://127.0.0.1:{port}/readyz")
            work = Workload(tokens, instruments)
            spy = None
            if args.profile:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--nonblocking",
                        "-r",
                        "200",
                        "-f",
                        "raw",
                        "-o",
                        args.profile,
                        "-p",
                        str(api.pid),
                        "-d",
                        str(int(args.seconds * (len(rates) + 1) + 5)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            ftl_rows = await _phases("ftl", port, work, rates, args.seconds, redis_url)
            if spy is not None:
                spy.wait(60)
            lua_open, lua_close = await _lua_split(port, work, redis_url, min(args.seconds, 5))
        finally:
            api.terminate()
            api.wait(10)
        print("\nFTL api process (Redis Lua hot path + one PostgreSQL round trip)\n")
        print(_table(ftl_rows))
        if work.errors:
            print(f"\nfirst error replies: {work.errors}")
        print(f"\nLua usec_per_call: position_open {lua_open:.1f} µs, position_close {lua_close:.1f} µs")
        if args.skip_baseline:
            return
        bport = free_port()
        base = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scripts.bench_baseline",
                "--database-url",
                database_url,
                "--port",
                str(bport),
            ],
            env=env,
            cwd=ROOT,
        )
        try:
            _wait_http(f"http://127.0.0.1:{bport}/healthz")
            work_b = Workload(tokens, instruments, seed_=8)
            base_rows = await _phases("baseline", bport, work_b, rates, args.seconds, None)
        finally:
            base.terminate()
            base.wait(10)
        print("\nPostgreSQL-only baseline (one transaction, SELECT ... FOR UPDATE)\n")
        print(_table(base_rows))
        ratio = ftl_rows[-1][0].achieved / max(base_rows[-1][0].achieved, 1e-9)
        print(f"\nSaturation throughput ratio FTL / baseline: {ratio:.2f}x")
    finally:
        if not servers or not isinstance(servers[0], EmbeddedRedis):  # a shared Redis: clean up
            client = aioredis.Redis.from_url(redis_url)
            stale = [k async for k in client.scan_iter(match=f"{prefix}*", count=5000)]
            for i in range(0, len(stale), 5000):
                await client.delete(*stale[i : i + 5000])
            await client.aclose()
        for s in reversed(servers):
            s.stop()


if __name__ == "__main__":
    asyncio.run(main())
