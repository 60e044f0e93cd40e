"""The checks at the end: `ftl audit`, and DESIGN section 8's invariants checked from the outside."""

from __future__ import annotations

import asyncio

import psycopg
import redis.asyncio as aioredis

from scripts.matchday.cluster import run_once
from scripts.matchday.state import MatchDayState
from scripts.matchday.users import Confirmed


class InvariantsMixin(MatchDayState):
    """`verify`: a list of (invariant, held, detail), and the output of `ftl audit`."""

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


def buys(c: Confirmed) -> bool:
    """Opening a long or closing a short buys (fill <= acceptable)."""
    return (c.kind == "open") == (c.side == "long")
