"""The ``ftl audit`` entry point: wait for the flusher, snapshot Redis and PostgreSQL, run the checks.

How it copes with the flusher's lag (and with trading that goes on during the audit):

1. It reads the trade counter ``T`` (Redis ``seq.trade``: every trade so far has an id ≤ T) and
   waits, bounded by ``wait_s``, until the outbox holds no entry of a trade ≤ T: every trade ≤ T
   is then in PostgreSQL. An outbox that does not drain in time is itself a failed check.
2. It reads Redis (every wallet, instrument, known position and idempotency key, pipelined in
   chunks), then PostgreSQL in one REPEATABLE READ transaction.
3. Rows whose sequence (id of the last trade they reflect) is above ``T``, in Redis or in
   PostgreSQL, are skipped: they moved during the audit. The cross-row checks (conservation over
   PostgreSQL rows and over Redis, skews against Redis, index prices) need a *quiet* snapshot: no
   trade after ``T`` anywhere (the counters did not move while reading) and an empty dirty set.
   The audit retries up to ``attempts`` times to get one; if it never does, those checks are
   reported as skipped and the exit code is 3 (partial).

Exit codes: see :mod:`ftl.audit.report`.
"""

from __future__ import annotations

import asyncio
import time

from ftl.audit.backlog import wait_flushed
from ftl.audit.checks import run_checks
from ftl.audit.pg_snapshot import snapshot_pg
from ftl.audit.redis_snapshot import snapshot_redis
from ftl.audit.replies import as_int
from ftl.audit.report import AuditReport
from ftl.persistence.stores import Stores


async def audit(stores: Stores, *, wait_s: float = 30.0, attempts: int = 3) -> AuditReport:
    """Run every check; see the module docstring for how the flusher's lag is handled."""
    t0 = time.monotonic()
    deadline = t0 + wait_s
    report = AuditReport()
    k = stores.keys
    for attempt in range(1, attempts + 1):
        report = AuditReport(attempts=attempt)
        report.watermark = as_int(await stores.redis.hget(k.seq, "trade")) or 0
        report.drained, _ = await wait_flushed(stores, report.watermark, deadline)
        async with stores.pg.connection() as conn:
            cur = await conn.execute("SELECT id FROM users ORDER BY id")
            users = [int(r[0]) for r in await cur.fetchall()]
            cur = await conn.execute("SELECT id FROM instruments ORDER BY id")
            instruments = [int(r[0]) for r in await cur.fetchall()]
            cur = await conn.execute("SELECT id FROM cfd_positions WHERE status = 'open'")
            pg_open = [int(r[0]) for r in await cur.fetchall()]
        positions_before = as_int(await stores.redis.hget(k.seq, "position")) or 0
        red = await snapshot_redis(stores, users, instruments, pg_open)
        pg = await snapshot_pg(stores, report.watermark, red.positions)
        after = as_int(await stores.redis.hget(k.seq, "trade")) or 0
        report.quiet = (
            red.trade_counter == report.watermark == after
            and pg.max_trade <= report.watermark
            and red.position_counter == positions_before
            and red.dirty == 0
        )
        if report.quiet or not report.drained or attempt == attempts:
            run_checks(report, red, pg, users)
            break
        await asyncio.sleep(0.2)  # trading went on: give it a moment to pause, then retry
    report.seconds = time.monotonic() - t0
    return report
