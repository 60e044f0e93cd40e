"""The audit's checks: each compares the two snapshots on one invariant and fills one Check."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ftl.audit.pg_snapshot import PgSnapshot
from ftl.audit.redis_snapshot import RedisSnapshot
from ftl.audit.report import AuditReport

SKIPPED = "skipped: trading went on during the audit (needs a quiet snapshot)"


def run_checks(report: AuditReport, red: RedisSnapshot, pg: PgSnapshot, users: Sequence[int]) -> None:
    """Every check, in the report's order."""
    t, quiet = report.watermark, report.quiet
    trades_balance(report, pg)
    idempotency_keys(report, red, pg, t)
    positions_replay(report, pg)
    wallets_replay(report, pg, t)
    no_negative_balance(report, red, pg)
    conservation_pg(report, pg, quiet)
    conservation_redis(report, red, pg, users, quiet)
    wallets_match(report, red, pg, users, t)
    positions_match(report, red, pg, t)
    skew_pg(report, pg, quiet)
    instruments_match(report, red, pg, quiet)
    skew_redis(report, red, quiet)
    ledger_references(report, pg)
    no_dead_letters(report, red)
    if not report.drained:
        outbox_drained(report)


def trades_balance(report: AuditReport, pg: PgSnapshot) -> None:
    c = report.check("trades balance (open, close, liquidation)")
    c.checked = pg.trades_total
    for row in pg.bad_trades:
        tid, kind, side, qty, price, notional, fee, margin, lev, pnl, payout = row
        c.fail(
            f"trade {tid} ({kind} {side}): qty {qty} price {price} notional {notional} fee {fee} "
            f"margin {margin} leverage {lev} pnl {pnl} payout {payout}"
        )
    c.mismatches = max(c.mismatches, pg.bad_trades_total)


def idempotency_keys(report: AuditReport, red: RedisSnapshot, pg: PgSnapshot, t: int) -> None:
    c = report.check("one trade per (user, idempotency key)")
    c.checked = len(pg.idempotency)
    for uid, key, n in pg.duplicate_keys:
        c.fail(f"user {uid} key {key!r}: {n} trades")
    for (uid, key), tid in sorted(red.idempotency.items()):
        c.checked += 1
        if tid > t:
            c.skipped += 1
            continue
        found = pg.idempotency.get((uid, key))
        if found != tid:
            c.fail(f"Redis idem:{uid}:{key} -> trade {tid}, PostgreSQL has {found}")


def positions_replay(report: AuditReport, pg: PgSnapshot) -> None:
    c = report.check("positions replay from their trades (PG)")
    c.checked, c.skipped = pg.positions_checked, pg.positions_total - pg.positions_checked
    for row in pg.position_ledger:
        pid, qty, margin, en, rp, status, seq, opens, rq, rm, ren, rpnl, last, foreign = row
        c.fail(
            f"position {pid} ({status}): qty {qty}/{rq} margin {margin}/{rm} entry_notional "
            f"{en}/{ren} realised {rp}/{rpnl} seq {seq}/{last} opens {opens} foreign {foreign} "
            "(row/replay)"
        )


def wallets_replay(report: AuditReport, pg: PgSnapshot, t: int) -> None:
    c = report.check("wallets replay from grant + trades (PG)")
    c.checked = pg.wallets_replayed
    c.skipped = len(pg.wallets) - 1 - pg.wallets_replayed
    for uid, a, lk, seq, ea, el, es in pg.wallet_replay:
        c.fail(f"wallet {uid}: available {a}/{ea} locked {lk}/{el} seq {seq}/{es} (row/replay)")
    house = pg.wallets.get(0)
    if house is None:
        c.fail("the house wallet (user 0) is missing")
    elif house[3] <= t and pg.max_trade <= t:
        c.checked += 1
        granted = house[2]
        if (house[0], house[1], house[3]) != (granted + pg.house_replay[0], 0, pg.house_replay[1]):
            c.fail(
                f"house: available {house[0]}/{granted + pg.house_replay[0]} locked {house[1]}/0 "
                f"seq {house[3]}/{pg.house_replay[1]} (row/replay)"
            )
    else:
        c.skipped += 1


def no_negative_balance(report: AuditReport, red: RedisSnapshot, pg: PgSnapshot) -> None:
    c = report.check("no negative user balance (PG and Redis)")
    for uid, (a, lk, _g, _s) in pg.wallets.items():
        if uid == 0:
            continue
        c.checked += 1
        if a < 0 or lk < 0:
            c.fail(f"PostgreSQL wallet {uid}: available {a} locked {lk}")
    for uid, w in red.wallets.items():
        if uid == 0 or w is None:
            continue
        c.checked += 1
        if w[0] < 0 or w[1] < 0:
            c.fail(f"Redis wallet {uid}: available {w[0]} locked {w[1]}")


def conservation_pg(report: AuditReport, pg: PgSnapshot, quiet: bool) -> None:
    c = report.check("conservation of money in PostgreSQL")
    if not quiet:
        c.note = SKIPPED
        return
    total = sum(a + lk for a, lk, _g, _s in pg.wallets.values())
    granted = sum(g for _a, _lk, g, _s in pg.wallets.values())
    c.checked = len(pg.wallets)
    if total != granted:
        c.fail(f"Σ available + Σ locked + house = {total}, Σ granted = {granted} ({total - granted:+d})")


def conservation_redis(
    report: AuditReport, red: RedisSnapshot, pg: PgSnapshot, users: Sequence[int], quiet: bool
) -> None:
    c = report.check("conservation of money in Redis")
    if not quiet:
        c.note = SKIPPED
        return
    total = granted = 0
    for uid in users:
        w_pg = pg.wallets.get(uid)
        w_hot = red.wallets.get(uid)
        if w_pg is None:
            continue
        granted += w_pg[2]
        total += w_hot[0] + w_hot[1] if w_hot is not None else w_pg[0] + w_pg[1]
    missing = sum(1 for uid in users if red.wallets.get(uid) is None and uid in pg.wallets)
    c.checked = len(users)
    if red.wallets.get(0) is None:
        c.fail("the house wallet is missing from Redis")
    elif total != granted:
        c.fail(
            f"Σ available + Σ locked + house = {total}, Σ granted = {granted} ({total - granted:+d}); "
            f"{missing} wallet(s) not in Redis counted from PostgreSQL"
        )


def wallets_match(
    report: AuditReport, red: RedisSnapshot, pg: PgSnapshot, users: Sequence[int], t: int
) -> None:
    c = report.check("wallets: Redis = PostgreSQL (available, locked, seq)")
    for uid in users:
        w_row = pg.wallets.get(uid)
        w_red = red.wallets.get(uid)
        if w_row is None:
            if w_red is not None:
                c.fail(f"wallet {uid} is in Redis but has no PostgreSQL row")
            continue
        if w_red is None:  # loaded lazily on its first trade
            c.skipped += 1
            continue
        if w_red[2] > t or w_row[3] > t:
            c.skipped += 1
            continue
        c.checked += 1
        if w_red != (w_row[0], w_row[1], w_row[3]):
            c.fail(
                f"wallet {uid}: Redis available {w_red[0]} locked {w_red[1]} seq {w_red[2]}; "
                f"PostgreSQL available {w_row[0]} locked {w_row[1]} seq {w_row[3]}"
            )


def positions_match(report: AuditReport, red: RedisSnapshot, pg: PgSnapshot, t: int) -> None:
    c = report.check("positions: Redis = PostgreSQL")
    every = {**pg.other_positions, **pg.open_positions}
    for pid in sorted(set(every) | set(red.positions)):
        p_row = every.get(pid)
        p_red = red.positions.get(pid)
        if (p_red is not None and p_red[7] > t) or (p_row is not None and p_row[7] > t):
            c.skipped += 1
            continue
        c.checked += 1
        if p_red is None:
            c.fail(f"open position {pid} is missing from Redis")
        elif p_row is None:
            c.fail(f"position {pid} is in Redis ({p_red[6]}, seq {p_red[7]}) but not in PostgreSQL")
        elif tuple(p_red) != tuple(p_row):
            c.fail(
                f"position {pid}: Redis {p_red} PostgreSQL {p_row} "
                "(user instrument side qty N_e M status seq)"
            )


def skew_pg(report: AuditReport, pg: PgSnapshot, quiet: bool) -> None:
    c = report.check("instrument skew = Σ long - Σ short (PG rows)")
    if not quiet:
        c.note = SKIPPED
        return
    for iid, (_index, skew, _status, lng, sht) in sorted(pg.instruments.items()):
        c.checked += 1
        lu, su = pg.open_interest.get(iid, (lng, sht))
        if (skew, lu, su) != (lng - sht, lng, sht):
            c.fail(
                f"instrument {iid}: skew/long/short columns {skew}/{lu}/{su}, "
                f"open positions {lng - sht}/{lng}/{sht}"
            )


def instruments_match(report: AuditReport, red: RedisSnapshot, pg: PgSnapshot, quiet: bool) -> None:
    c = report.check("instruments: Redis = PostgreSQL (skew, long, short, index, status)")
    if not quiet:
        c.note = SKIPPED
        return
    for iid, (index, _skew, status, lng, sht) in sorted(pg.instruments.items()):
        hot_i = red.instruments.get(iid)
        if hot_i is None:
            c.skipped += 1  # not hot yet (loaded at start or by the rebuild)
            continue
        c.checked += 1
        want = (index, lng - sht, lng, sht, status)
        if hot_i != want:
            c.fail(f"instrument {iid}: Redis (index skew long short status) {hot_i}, PostgreSQL {want}")


def skew_redis(report: AuditReport, red: RedisSnapshot, quiet: bool) -> None:
    c = report.check("instrument skew = Σ open positions (Redis)")
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for _pid, (_u, iid, side, qty, _en, _m, status, _seq) in red.positions.items():
        if status == "open":
            sums[iid][0 if side == "long" else 1] += qty
    for iid, hot_i in sorted(red.instruments.items()):
        if hot_i is None:
            continue
        c.checked += 1
        _ix, skew, lng, sht, _status = hot_i
        if skew != lng - sht:
            c.fail(f"instrument {iid}: Redis skew {skew} but long {lng} - short {sht} = {lng - sht}")
        elif quiet and [lng, sht] != sums.get(iid, [0, 0]):
            got = sums.get(iid, [0, 0])
            c.fail(f"instrument {iid}: Redis long/short {lng}/{sht}, open position hashes {got[0]}/{got[1]}")


def ledger_references(report: AuditReport, pg: PgSnapshot) -> None:
    c = report.check("ledger references (trade -> user, position, instrument; position -> user, instrument)")
    c.checked = pg.trades_total
    for line in pg.dangling:
        c.fail(line)


def no_dead_letters(report: AuditReport, red: RedisSnapshot) -> None:
    c = report.check("no dead letters (outbox entries that could not be written)")
    for line in red.dead_letters:
        c.fail(line)


def outbox_drained(report: AuditReport) -> None:
    c = report.check("outbox drained")
    c.fail(
        "trades at or below the watermark are still in the outbox or not yet folded: is the flusher running?"
    )
