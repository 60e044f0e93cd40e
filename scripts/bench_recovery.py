"""Recovery benchmark: rebuild Redis from PostgreSQL at scale, and the flusher's lag under load.

    .venv/bin/python -m scripts.bench_recovery [--users 100000] [--trades 1000000]
        [--instruments 1250] [--rate 2000] [--seconds 20] [--runs 3] [--skip-lag] [--fsync-off]

1. Rebuild: fills PostgreSQL with COPY-free ``INSERT ... SELECT generate_series`` (users with
   wallets, instruments, positions and the trades that made them: 60 % of the trades open a
   position, 40 % close one, so a third of the positions stay open, ~200 K for 1 M trades;
   trades spread over the last 4.2 days, so ~1/4 carry an idempotency key still inside the 24 h
   window the rebuild restores). Wallets equal a replay of the trades, so ``ftl audit`` passes on
   the data. Then, ``--runs`` times: FLUSHALL Redis and time ``rebuild``. Goal ≤ 15 s.
2. Flusher lag: starts ``ftl run --role=flusher`` as its own process on the rebuilt state,
   drives the Lua trade scripts directly (no HTTP) at ``--rate`` trades/s from an open-loop
   generator, and samples the unsettled age every 20 ms: the age of the oldest trade whose outbox
   entry is not settled or whose aggregates are not folded (ftl.worker.flusher's
   ``unsettled_age_s``; without it, the oldest outbox entry's age). Goal p99 ≤ 250 ms.
3. ``ftl audit`` on the final state (its time at this scale, and that it passes).

PostgreSQL is durable (fsync and synchronous_commit on, as in production): a fresh database on
the machine's own server (postgresql://postgres@127.0.0.1:5432), dropped at the end, or
FTL_BENCH_DATABASE_URL (emptied: give a throw-away one). ``--fsync-off``: an embedded PostgreSQL
with fsync off instead, the dev default, for comparison. Redis is embedded, or
FTL_BENCH_REDIS_URL (FLUSHALL: give a throw-away one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from ftl import config, logs
from ftl.audit import audit
from ftl.persistence.ledger import used_keys
from ftl.persistence.migrations import migrate_sync
from ftl.persistence.processes import free_port
from ftl.persistence.recovery import rebuild
from ftl.persistence.stores import Stores
from ftl.persistence.trade_replies import NO_USED_KEYS, CloseResult, OpenResult, Rejected
from ftl.persistence.trade_scripts import TradingScripts
from ftl.worker.flusher import Flusher
from scripts.benchsupport import UnsettledAge, bench_servers, pct, pg_settings

ROOT = Path(__file__).resolve().parent.parent

_DATA = """
INSERT INTO users (id, email, name, district_id)
SELECT g, 'u' || g || '@bench.test', 'user ' || g, 1 + g %% 64 FROM generate_series(1, %(users)s) g;

INSERT INTO instruments (id, player_id, name, team, position, index_price, depth, skew_cap)
SELECT g, 100000 + g, 'player ' || g, 'team ' || (g %% 48), 'FW', 500 + (g * 37) %% 1500, 50000, 25000
FROM generate_series(1, %(instruments)s) g;

CREATE TEMP TABLE bp ON COMMIT DROP AS
SELECT k, 1 + (k * 7919) %% %(users)s AS user_id, i AS instrument_id,
       CASE WHEN (k / %(instruments)s) %% 2 = 0 THEN 'long' ELSE 'short' END AS side,
       q AS qty, lev, price, q * price AS notional, (q * price + lev - 1) / lev AS margin,
       (q * price * 10 + 9999) / 10000 AS fee, k %% 3 <> 0 AS closed,
       q * greatest(price + k %% 21 - 10, 1) AS exit_notional, greatest(price + k %% 21 - 10, 1) AS exit_price
FROM (SELECT k, 1 + k %% %(instruments)s AS i, 1 + k %% 5 AS q, 1 + (k / 7) %% 5 AS lev,
             500 + ((1 + k %% %(instruments)s) * 37) %% 1500 AS price
      FROM generate_series(1::bigint, %(positions)s) k) s;

CREATE TEMP TABLE bc ON COMMIT DROP AS
SELECT k, CASE WHEN side = 'long' THEN exit_notional - notional ELSE notional - exit_notional END AS pnl,
       (exit_notional * 10 + 9999) / 10000 AS exit_fee
FROM bp WHERE closed;

INSERT INTO cfd_positions (id, user_id, instrument_id, side, qty, entry_price, entry_notional, margin,
                           leverage, realised_pnl, status, seq, opened_at, closed_at)
SELECT bp.k, user_id, instrument_id, side,
       CASE WHEN closed THEN 0 ELSE qty END, price, CASE WHEN closed THEN 0 ELSE notional END,
       CASE WHEN closed THEN 0 ELSE margin END, lev, coalesce(bc.pnl, 0),
       CASE WHEN closed THEN 'closed' ELSE 'open' END,
       CASE WHEN closed THEN %(positions)s + bp.k ELSE bp.k END,
       now() - (%(top)s - bp.k) * interval '0.3 s',
       CASE WHEN closed THEN now() - (%(top)s - %(positions)s - bp.k) * interval '0.3 s' END
FROM bp LEFT JOIN bc ON bc.k = bp.k;

INSERT INTO trades (id, user_id, position_id, instrument_id, kind, side, qty, price, notional, fee,
                    margin, realised_pnl, payout, leverage, index_price, skew_after,
                    idempotency_key, request_hash, created_at)
SELECT k, user_id, k, instrument_id, 'open', side, qty, price, notional, fee, margin, 0, 0, lev, price,
       0, 'o' || k, 'h' || k, now() - (%(top)s - k) * interval '0.3 s'
FROM bp
UNION ALL
SELECT %(positions)s + bp.k, user_id, bp.k, instrument_id, 'close', side, qty, exit_price,
       exit_notional, bc.exit_fee, margin, bc.pnl, greatest(margin + bc.pnl - bc.exit_fee, 0), lev,
       price, 0, 'c' || bp.k, 'h' || bp.k, now() - (%(top)s - %(positions)s - bp.k) * interval '0.3 s'
FROM bp JOIN bc ON bc.k = bp.k;

INSERT INTO wallets (user_id, available, locked, granted, seq)
SELECT u.id, 1000000 + coalesce(a.cash, 0), coalesce(a.locked, 0), 1000000, coalesce(a.last, 0)
FROM users u LEFT JOIN (
    SELECT user_id, sum(CASE WHEN kind = 'open' THEN -(margin + fee) ELSE payout END) AS cash,
           sum(CASE WHEN kind = 'open' THEN margin ELSE -margin END) AS locked, max(id) AS last
    FROM trades GROUP BY user_id) a ON a.user_id = u.id
WHERE u.id > 0;

UPDATE wallets SET
    available = (SELECT sum(CASE WHEN kind = 'open' THEN fee ELSE margin - payout END) FROM trades),
    seq = (SELECT max(id) FROM trades)
WHERE user_id = 0;

UPDATE instruments i SET skew = s.skew FROM (
    SELECT instrument_id, sum(CASE WHEN side = 'long' THEN qty ELSE -qty END) AS skew
    FROM cfd_positions WHERE status = 'open' GROUP BY instrument_id) s
WHERE s.instrument_id = i.id;
"""


def _fill(database_url: str, users: int, trades: int, instruments: int) -> float:
    positions = trades * 3 // 5  # 60 % opens; two in three of them closed again: 40 % closes
    t0 = time.perf_counter()
    with psycopg.connect(database_url, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            _DATA,
            {"users": users, "instruments": instruments, "positions": positions, "top": 2 * positions},
        )
        conn.commit()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def _counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM users WHERE id > 0), (SELECT count(*) FROM instruments), "
            "(SELECT count(*) FROM trades), (SELECT count(*) FROM cfd_positions WHERE status = 'open'), "
            "(SELECT count(*) FROM trades WHERE created_at > now() - interval '24 hours')"
        ).fetchone()
    assert row is not None
    names = ("users", "instruments", "trades", "open positions", "trades in the 24 h window")
    return dict(zip(names, (int(x) for x in row), strict=True))


async def _rebuild_runs(stores: Stores, runs: int) -> list[Any]:
    reports = []
    for _ in range(runs):
        await stores.redis.flushall()
        reports.append(await rebuild(stores))
    return reports


class Generator:
    """Opens (60 %) and closes (40 %) through the Lua scripts at a fixed arrival rate."""

    def __init__(self, stores: Stores, users: int, instruments: int) -> None:
        self.t = TradingScripts(stores.scripts, stores.keys)
        self.stores = stores
        self.users = users
        self.instruments = instruments
        self.rng = random.Random(11)
        self.open: list[tuple[int, int, str]] = []  # (user, position, side)
        self.ok = 0
        self.rejected: dict[str, int] = {}
        self.late = 0
        self.seq = 0  # idempotency keys stay unique across runs

    async def one(self, i: int) -> None:
        if self.open and self.rng.random() < 0.4:
            user, pid, side = self.open.pop(self.rng.randrange(len(self.open)))
            res: Any = await self._keys_loaded(
                user,
                partial(
                    self.t.close,
                    user_id=user,
                    position_id=pid,
                    acceptable_price=1 if side == "long" else 10**9,
                    idempotency_key=f"bc{i}",
                    district_id=1 + user % 64,
                ),
            )
        else:
            user = self.rng.randint(1, self.users)
            side = self.rng.choice(("long", "short"))
            res = await self._keys_loaded(
                user,
                partial(
                    self.t.open,
                    user_id=user,
                    instrument_id=self.rng.randint(1, self.instruments),
                    side=side,
                    qty=self.rng.randint(1, 5),
                    leverage=self.rng.randint(1, 5),
                    acceptable_price=10**9 if side == "long" else 1,
                    idempotency_key=f"bo{i}",
                    district_id=1 + user % 64,
                ),
            )
            if isinstance(res, OpenResult):
                self.open.append((user, res.position_id, side))
        if isinstance(res, OpenResult | CloseResult):
            self.ok += 1
        else:
            self.rejected[res.code] = self.rejected.get(res.code, 0) + 1

    async def load_all_used_keys(self) -> int:
        """Every user's used-keys set, as it is once he has traded in this Redis incarnation (the
        lag measures the flusher, not each user's first-trade load)."""
        epoch = await self.t.epoch()
        assert epoch is not None
        async with self.stores.pg.connection() as conn:
            cur = await conn.execute(
                "SELECT user_id, idempotency_key FROM trades WHERE idempotency_key IS NOT NULL"
            )
            keys: dict[int, list[str]] = {u: [] for u in range(1, self.users + 1)}
            n = 0
            async for user_id, key in cur:
                keys.setdefault(int(user_id), []).append(str(key))
                n += 1
        users = list(keys)
        for start in range(0, len(users), 200):
            chunk = users[start : start + 200]
            await asyncio.gather(*(self.t.load_used_keys(u, epoch, keys[u]) for u in chunk))
        return n

    async def _keys_loaded(self, user: int, call: Callable[[], Awaitable[Any]]) -> Any:
        """The script call; on ``no_used_keys`` the user's set is loaded, as the api does."""
        res = await call()
        if isinstance(res, Rejected) and res.code == NO_USED_KEYS:
            epoch = await self.t.epoch()
            async with self.stores.pg.connection() as conn:
                keys = (await used_keys(conn, [user]))[user]
            if epoch is not None:
                await self.t.load_used_keys(user, epoch, keys)
            res = await call()
        return res

    async def run(self, rate: float, seconds: float, in_flight: int = 128) -> float:
        """Open loop: trade i starts at i / rate (at most ``in_flight`` at once); the achieved rate."""
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(in_flight)

        async def bounded(i: int) -> None:
            async with slots:
                await self.one(i)

        start = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while (now := loop.time() - start) < seconds:
            due = int(now * rate)
            if due - n > rate * 0.05:
                self.late += due - n
            while n < due:
                self.seq += 1
                task = asyncio.create_task(bounded(self.seq))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            await asyncio.sleep(0.002)
        if tasks:
            await asyncio.gather(*tasks)
        return self.ok / (loop.time() - start)


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310
        return int(resp.status)


_AGE = UnsettledAge()


async def _age_ms(stores: Stores) -> float:
    return await _AGE(stores) * 1000


async def _measure(stores: Stores, gen: Generator, rate: float, seconds: float) -> dict[str, Any]:
    """Drive ``rate`` trades/s for ``seconds``; sample the unsettled age every 20 ms."""
    samples: list[float] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(await _age_ms(stores))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    ok0 = gen.ok
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    await gen.run(rate, seconds)
    elapsed = loop.time() - t_start
    done.set()
    await sampler
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        if await _age_ms(stores) == 0:
            break
        await asyncio.sleep(0.02)
    drain = time.monotonic() - t0
    backlog = await stores.redis.xlen(stores.keys.outbox)
    return {
        "target": rate,
        "flushed": (gen.ok - ok0) / (elapsed + drain),
        "achieved": (gen.ok - ok0) / elapsed,
        "ok": gen.ok - ok0,
        "samples": len(samples),
        "p50": pct(samples, 50) if samples else 0.0,
        "p95": pct(samples, 95) if samples else 0.0,
        "p99": pct(samples, 99) if samples else 0.0,
        "max": max(samples, default=0.0),
        "drain": drain,
        "left": backlog,
    }


async def _warm(stores: Stores, gen: Generator, limit_s: float = 300) -> float:
    """Trickle trades (50/s) until the flusher keeps the outbox young: its first passes after a
    rebuild (the marks module's index and first mark-to-market) are done."""
    t0 = time.monotonic()
    young = 0
    while young < 10 and time.monotonic() - t0 < limit_s:
        await gen.run(50, 0.2)
        young = young + 1 if await _age_ms(stores) < 500 else 0
    return time.monotonic() - t0


class _NoMarks:
    """Stands in for ftl.worker.marks.Marks: the flush loop alone (outbox and dirty set)."""

    async def track(self, entries: Any) -> int:
        return 0

    async def tick(self, now: int | None = None) -> None:
        return None


async def _lag(
    stores: Stores, redis_url: str, database_url: str, args: argparse.Namespace
) -> list[tuple[str, dict[str, Any]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    env.update(
        {
            "FTL_REDIS_URL": redis_url,
            "FTL_DATABASE_URL": database_url,
            "FTL_FLUSHER_PORT": str(port),
            "FTL_LOG_LEVEL": "warning",
            "FTL_SEED_DEMO": "0",
            "FTL_DRAIN_S": "0",
        }
    )
    gen = Generator(stores, args.users, args.instruments)
    loaded = await gen.load_all_used_keys()
    print(f"\nused-keys sets of {args.users} users loaded ({loaded} keys), as after each user's first trade")
    rows: list[tuple[str, dict[str, Any]]] = []
    flusher = subprocess.Popen([sys.executable, "-m", "ftl", "run", "--role=flusher"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if await asyncio.to_thread(_status, f"http://127.0.0.1:{port}/readyz") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("flusher not ready")
            await asyncio.sleep(0.1)
        warm = await _warm(stores, gen)
        print(f"\nflusher process: first passes after a rebuild (marks index, mark-to-market) {warm:.1f} s")
        rows.append(
            (
                "`ftl run --role=flusher` (outbox, dirty set, marks)",
                await _measure(stores, gen, args.rate, args.seconds),
            )
        )
    finally:
        flusher.terminate()
        flusher.wait(10)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(Flusher(stores, marks=_NoMarks()).run(stop))  # type: ignore[arg-type]
    try:
        rows.append(
            (
                "in-process flush loop only (outbox, dirty set)",
                await _measure(stores, gen, args.rate, args.seconds),
            )
        )
    finally:
        stop.set()
        await loop_task
    if gen.rejected:
        print(f"rejections: {gen.rejected}")
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--instruments", type=int, default=1250)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--skip-lag", action="store_true")
    parser.add_argument(
        "--fsync-off", action="store_true", help="an embedded PostgreSQL with fsync off, not a durable one"
    )
    args = parser.parse_args()
    logs.configure("console", "warning")

    servers = await bench_servers("ftl-bench-recovery-", "fsync-off" if args.fsync_off else "durable")
    redis_url, database_url = servers.redis_url, servers.database_url
    try:
        shown = ", ".join(f"{k}={v}" for k, v in (await pg_settings(database_url)).items())
        print(f"\nPostgreSQL: {servers.database_label} ({shown})")
        migrate_sync(database_url)
        fill_s = _fill(database_url, args.users, args.trades, args.instruments)
        counts = _counts(database_url)
        print(f"\nPostgreSQL filled in {fill_s:.1f} s: {counts}\n")
        settings = config.Settings(env="test", redis_url=redis_url, database_url=database_url)
        stores = await Stores.open(settings, redis_url, database_url)
        try:
            reports = await _rebuild_runs(stores, args.runs)
            print("Rebuild of Redis from PostgreSQL (FLUSHALL, then `rebuild`)\n")
            print("| run | instruments | wallets | open positions | idempotency keys | seconds |")
            print("|---:|---:|---:|---:|---:|---:|")
            for i, rep in enumerate(reports, 1):
                print(
                    f"| {i} | {rep.instruments} | {rep.wallets} | {rep.positions} | "
                    f"{rep.idempotency_keys} | {rep.seconds:.2f} |"
                )
            best = min(rep.seconds for rep in reports)
            print(f"\nbest {best:.2f} s, worst {max(rep.seconds for rep in reports):.2f} s (goal ≤ 15 s)")
            info = await stores.redis.info("memory")
            print(f"Redis used_memory after the rebuild: {int(info['used_memory']) / 2**20:.0f} MiB")

            if not args.skip_lag:
                rows = await _lag(stores, redis_url, database_url, args)
                print(
                    f"\nFlusher lag: unsettled age ({_AGE.source}), Lua driven directly, "
                    f"{args.seconds:.0f} s\n"
                )
                print(
                    "| flusher | target/s | achieved/s | trades | p50 ms | p95 ms | p99 ms | max | drain s "
                    "| flushed/s |"
                )
                print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
                for name, lag in rows:
                    print(
                        f"| {name} | {lag['target']:.0f} | {lag['achieved']:.0f} | {lag['ok']} | "
                        f"{lag['p50']:.0f} | {lag['p95']:.0f} | {lag['p99']:.0f} | {lag['max']:.0f} | "
                        f"{lag['drain']:.2f} | {lag['flushed']:.0f} |"
                    )

            report = await audit(stores, wait_s=30)
            print(f"\n`ftl audit` on the final state: exit {report.exit_code} in {report.seconds:.1f} s")
            if report.exit_code:
                print(report.render())
        finally:
            await stores.close()
    finally:
        await servers.close()


if __name__ == "__main__":
    asyncio.run(main())
