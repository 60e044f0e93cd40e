"""What one ledger write costs PostgreSQL: backend CPU per call of ``ftl_write_trades`` by batch size.

    .venv/bin/python -m scripts.bench_ledger_write [--calls 1500] [--users 5000]

A fresh database on the machine's durable PostgreSQL (postgresql://postgres@127.0.0.1:5432, or
FTL_BENCH_DATABASE_URL's server), migrated, with users and one instrument; one connection calls
the write (sql/0003, as ledger.write_rows does) with batches of new trades of distinct users, and
reads its backend's CPU time from /proc before and after (the server must run on this machine).
Rows for comparison: ``SELECT 1``, the write with no row, one wallet UPDATE (a commit's fsync
costs CPU too), and one trade with ``synchronous_commit=off``. Dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ftl.persistence.ledger import _WRITE
from ftl.persistence.migrations import migrate_sync
from scripts.benchsupport import FreshDatabase

ADMIN = os.environ.get("FTL_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _backend_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Trades:
    """New open trades, each chained after its user's previous one."""

    def __init__(self, users: int) -> None:
        self.users = users
        self.last: dict[int, int] = {}
        self.next_id = 0

    def batch(self, n: int) -> str:
        rows = []
        now = int(time.time() * 1000)
        for user in random.sample(range(1, self.users + 1), n):
            self.next_id += 1
            tid = self.next_id
            rows.append(
                {
                    "trade_id": tid, "kind": "open", "user_id": user, "position_id": tid,
                    "instrument_id": 1, "side": "long", "qty": 1, "price": 1000, "notional": 1000,
                    "fee": 1, "margin": 500, "realised_pnl": 0, "payout": 0, "leverage": 2,
                    "index_price": 1000, "skew_after": 1, "idempotency_key": f"k{tid}",
                    "request_hash": "h", "ts": now, "pos_qty": 1, "pos_entry_price": 1000,
                    "pos_entry_notional": 1000, "pos_margin": 500, "pos_realised_pnl": 0,
                    "pos_status": "open", "pos_opened_ts": now, "pos_closed_ts": None,
                    "w_available": 1000, "w_locked": 500, "epoch": 1,
                    "prev_seq": self.last.get(user, 0),
                }
            )  # fmt: skip
            self.last[user] = tid
        return json.dumps(rows)


async def _row(
    conn: psycopg.AsyncConnection[Any], pid: int, label: str, per: int, calls: int,
    sql: str, params: Callable[[], Any],
) -> None:  # fmt: skip
    cpu0, wall0 = _backend_cpu_s(pid), time.perf_counter()
    for _ in range(calls):
        cur = await conn.execute(sql, params())
        if cur.description is not None:
            await cur.fetchall()
    cpu, wall = _backend_cpu_s(pid) - cpu0, time.perf_counter() - wall0
    per_trade = f"{1e6 * cpu / calls / per:,.0f}" if per else "-"
    print(f"| {label} | {1e6 * cpu / calls:,.0f} | {per_trade} | {1e6 * wall / calls:,.0f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--users", type=int, default=5000)
    args = parser.parse_args()
    db = FreshDatabase(ADMIN)
    await db.start()
    try:
        migrate_sync(db.url)
        conn = await psycopg.AsyncConnection.connect(db.url, autocommit=True)
        async with conn:
            await conn.execute("INSERT INTO redis_epochs (prefix, epoch) VALUES ('', 1)")
            await conn.execute(
                "INSERT INTO instruments (id, player_id, name, team, position, index_price, depth, "
                "skew_cap) VALUES (1, 1, 'p', 't', 'FW', 1000, 10000, 5000)"
            )
            await conn.execute(
                "INSERT INTO users (id, email, name) OVERRIDING SYSTEM VALUE "
                "SELECT g, 'u' || g || '@x.test', 'u' FROM generate_series(1, %s) g",
                (args.users,),
            )
            await conn.execute(
                "INSERT INTO wallets (user_id, available, granted) "
                "SELECT g, 100000, 100000 FROM generate_series(1, %s) g",
                (args.users,),
            )
            await conn.execute("SET enable_seqscan = off")  # as the ledger's pool
            cur = await conn.execute("SELECT pg_backend_pid(), current_setting('fsync'), "
                                     "current_setting('synchronous_commit')")  # fmt: skip
            row = await cur.fetchone()
            assert row is not None
            pid = int(row[0])
            print(
                f"database {db.name}: fsync={row[1]}, synchronous_commit={row[2]}; {args.calls} calls a row\n"
            )
            print("| call | backend µs a call | µs a trade | wall µs a call |")
            print("|---|---:|---:|---:|")
            trades = Trades(args.users)
            n = args.calls
            await _row(conn, pid, "SELECT 1", 0, n, "SELECT 1", lambda: None)
            await _row(conn, pid, "write, no row", 0, n, _WRITE, lambda: ("", "[]"))
            await _row(conn, pid, "UPDATE one wallet row (autocommit)", 0, n,
                       "UPDATE wallets SET seq = seq WHERE user_id = %s",
                       lambda: (random.randint(1, args.users),))  # fmt: skip
            for size in (1, 2, 4, 16):
                await _row(conn, pid, f"write, {size} trade(s)", size, max(n // size, 100), _WRITE,
                           lambda size=size: ("", trades.batch(size)))  # type: ignore[misc]  # fmt: skip
            await conn.execute("SET synchronous_commit = off")
            await _row(conn, pid, "write, 1 trade, synchronous_commit off", 1, n, _WRITE,
                       lambda: ("", trades.batch(1)))  # fmt: skip
    finally:
        db.stop()


if __name__ == "__main__":
    asyncio.run(main())
