"""A hypothesis state machine: the real Lua scripts on a real Redis against the pure reference model.

Every step runs one operation on both sides and asserts the same reply; after every step the whole
Redis state must equal the model's, and the invariants of DESIGN section 8 must hold. On a failure
hypothesis prints the shortest failing program and a ``@reproduce_failure`` blob (print_blob).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ftl.persistence.keys import Keys
from ftl.persistence.scripts import Scripts
from ftl.persistence.trade_replies import CloseResult, IndexResult, OpenResult, Rejected
from ftl.persistence.trade_scripts import TradingConfig, TradingScripts
from ftl.trading import amm
from tests.trading.model import Config, Instrument, Model, Wallet
from tests.trading.support import seed, snapshot

T = TypeVar("T")
NOW = 1_780_000_000_000
MAX_AGE_MS = 10_000
DISTRICTS = {1: None, 2: None, 3: 4}

users = st.sampled_from([1, 1, 2, 3, 4])  # 4 has no wallet
instrument_ids = st.sampled_from([1, 1, 2, 3])  # 3 does not exist
sides = st.sampled_from(["long", "short"])
qtys = st.integers(-2, 300).map(lambda x: x if x > 0 else [0, 700, amm.MAX_QTY + 1][x % 3])
leverages = st.sampled_from([1, 2, 3, 4, 5] * 4 + [0, 6])
slips = st.integers(-3, 40)
idem_keys = st.sampled_from([f"k{i}" for i in range(40)])


class TradingMachine(RuleBasedStateMachine):
    loop: ClassVar[asyncio.AbstractEventLoop]
    client: ClassVar[aioredis.Redis]
    scripts: ClassVar[Scripts]
    seen: ClassVar[Counter[str]] = Counter()  # outcomes over the whole run, to check coverage

    def __init__(self) -> None:
        super().__init__()
        self.keys = Keys(prefix=f"sm{secrets.token_hex(4)}:")
        self.now = NOW
        self.model = Model(config=Config(fee_bps=10, max_index_age_ms=MAX_AGE_MS, mm_bps=500))
        self.model.instruments[1] = Instrument(id=1, index=1_000, depth=2_000, cap=1_000, index_ts=NOW)
        self.model.instruments[2] = Instrument(
            id=2, index=500, depth=1_000, cap=600, index_ts=NOW, fee_bps=30
        )
        self.model.wallets[1] = Wallet(available=300_000)
        self.model.wallets[2] = Wallet(available=100_000)
        self.model.wallets[3] = Wallet(available=50_000, district=4)
        self.total = self.model.total_money()
        self.trading = TradingScripts(
            self.scripts, self.keys, TradingConfig(fee_bps=10, max_index_age_ms=MAX_AGE_MS, mm_bps=500),
            clock=lambda: self.now,
        )  # fmt: skip
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.trips = 0  # round trips so far: each gets fresh idempotency keys
        self.run(seed(self.client, self.keys, self.model))
        self.run(self.client.sadd(self.keys.used_keys(4), -1))  # keys loaded, but no wallet

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        async def clean() -> None:
            found = [k async for k in self.client.scan_iter(match=f"{self.keys.prefix}*", count=1000)]
            if found:
                await self.client.delete(*found)

        self.run(clean())

    # ---- one operation on both sides ----

    def both(self, op: str, args: dict[str, Any]) -> OpenResult | CloseResult | IndexResult | Rejected:
        before = self.run(snapshot(self.client, self.keys))
        got = self.run(getattr(self.trading, op)(**args))
        want = getattr(self.model, op)(**args)
        assert got == want, (op, args)
        self.seen[f"{op}:{got.code if isinstance(got, Rejected) else 'ok'}"] += 1
        if isinstance(got, Rejected):
            assert self.run(snapshot(self.client, self.keys)) == before, (op, args, got)
        return got

    def acceptable(self, iid: int, side: str, qty: int, slip: int, closing: bool = False) -> int:
        ins = self.model.instruments.get(iid)
        if ins is None or not 1 <= qty <= amm.MAX_QTY:
            return 1_000
        buys = (side == "long") != closing
        q = qty if buys else -qty
        if abs(ins.skew + q) > ins.depth - 1:
            return 1_000
        price = amm.fill_price_exact(ins.index, ins.skew, ins.depth, q)
        return max(1, int(price) + slip if buys else int(price) - slip)

    def check_fill(self, res: OpenResult | CloseResult, acceptable: int, buys: bool) -> None:
        if buys:  # accepted fill within the acceptable price, per unit and in total
            assert res.price <= acceptable and res.notional <= res.qty * acceptable
        else:
            assert res.price >= acceptable and res.notional >= res.qty * acceptable

    def pick(self, data: st.DataObject) -> int:
        """A position id: mostly an open one, sometimes any (closed, liquidated)."""
        open_ids = sorted(p.id for p in self.model.positions.values() if p.status == "open")
        if open_ids and data.draw(st.integers(0, 3)) > 0:
            return data.draw(st.sampled_from(open_ids))
        return data.draw(st.sampled_from(sorted(self.model.positions)))

    # ---- rules ----

    @rule(user=users, iid=instrument_ids, side=sides, qty=qtys, lev=leverages, slip=slips, key=idem_keys)
    def open(self, user: int, iid: int, side: str, qty: int, lev: int, slip: int, key: str) -> None:
        args = {
            "user_id": user, "instrument_id": iid, "side": side, "qty": qty, "leverage": lev,
            "acceptable_price": self.acceptable(iid, side, qty, slip), "idempotency_key": key,
            "district_id": DISTRICTS.get(user), "now": self.now,
        }  # fmt: skip
        res = self.both("open", args)
        self.requests.append(("open", args))
        if isinstance(res, OpenResult):
            self.check_fill(res, args["acceptable_price"], side == "long")
            assert abs(res.skew) <= self.model.instruments[iid].cap, "an open passed the skew cap"

    @rule(data=st.data(), slip=slips, key=idem_keys, part=st.sampled_from([None, None, 1, 2, 3]))
    def close(self, data: st.DataObject, slip: int, key: str, part: int | None) -> None:
        if not self.model.positions:
            return
        pos = self.model.positions[self.pick(data)]
        user = data.draw(st.sampled_from([pos.user, pos.user, pos.user, 1, 2]))
        qty = None if part is None or pos.qty == 0 else max(1, pos.qty * part // 4)
        args = {
            "user_id": user, "position_id": pos.id, "instrument_id": pos.instrument, "qty": qty,
            "acceptable_price": self.acceptable(pos.instrument, pos.side, qty or pos.qty, slip, closing=True),
            "idempotency_key": key, "district_id": DISTRICTS.get(user), "now": self.now,
        }  # fmt: skip
        res = self.both("close", args)
        self.requests.append(("close", args))
        if isinstance(res, CloseResult):
            self.check_fill(res, args["acceptable_price"], pos.side == "short")

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data(), other_body=st.booleans())
    def duplicate(self, data: st.DataObject, other_body: bool) -> None:
        op, args = data.draw(st.sampled_from(self.requests))
        args = dict(args, now=self.now)
        if other_body:
            args["acceptable_price"] = args["acceptable_price"] + 1
        trades = len(self.model.outbox)
        res = self.both(op, args)
        if isinstance(res, OpenResult | CloseResult) and res.replay:
            assert len(self.model.outbox) == trades

    @rule(iid=st.sampled_from([1, 2]), pct=st.integers(-30, 30), dt=st.integers(0, 4_000))
    def move_index(self, iid: int, pct: int, dt: int) -> None:
        self.now += dt
        ins = self.model.instruments[iid]
        new = min(amm.MAX_PRICE, max(1, ins.index * (100 + pct) // 100))
        self.both("update_index", {"instrument_id": iid, "index_price": new, "ts": self.now})

    @rule(iid=st.sampled_from([1, 2]), pct=st.sampled_from([-60, -45, -35, 40, 70]))
    def shock(self, iid: int, pct: int) -> None:
        self.move_index(iid, pct, 500)

    @rule(
        iid=st.sampled_from([1, 2]),
        status=st.sampled_from(["halted", "open", "open", "open", "closed", "bogus"]),
    )
    def set_status(self, iid: int, status: str) -> None:
        self.both("update_index", {"instrument_id": iid, "index_price": None, "status": status})

    @rule(dt=st.sampled_from([100, 1_000, 5_000, MAX_AGE_MS + 1]))
    def time_passes(self, dt: int) -> None:
        self.now += dt

    @rule(data=st.data())
    def liquidate(self, data: st.DataObject) -> None:
        if not self.model.positions:
            return
        m = self.model
        underwater = [
            p.id for p in m.positions.values()
            if p.status == "open" and amm.is_liquidatable(
                p.side, p.qty, p.entry_notional, p.margin,
                amm.mark(m.instruments[p.instrument].index, m.instruments[p.instrument].skew,
                         m.instruments[p.instrument].depth),
                m.config.mm_bps,
            )
        ]  # fmt: skip
        if underwater and data.draw(st.booleans()):
            pos = m.positions[data.draw(st.sampled_from(sorted(underwater)))]
        else:
            pos = m.positions[self.pick(data)]
        args = {
            "position_id": pos.id, "user_id": pos.user, "instrument_id": pos.instrument,
            "district_id": DISTRICTS.get(pos.user), "now": self.now,
        }  # fmt: skip
        self.both("liquidate", args)

    @rule(user=st.sampled_from([1, 2, 3]), iid=st.sampled_from([1, 2]), side=sides,
          qty=st.integers(1, 300), lev=st.integers(1, 5))  # fmt: skip
    def round_trip(self, user: int, iid: int, side: str, qty: int, lev: int) -> None:
        w = self.model.wallets[user]
        money = w.available + w.locked
        # Fresh keys: reusing one (a replay of an earlier identical round trip, which moves no
        # money) would compare the first answer's balances with today's (tests/trading/
        # test_round_trip_regression.py).
        self.trips += 1
        key = f"rt{self.trips}"
        opened = self.both(
            "open",
            {"user_id": user, "instrument_id": iid, "side": side, "qty": qty, "leverage": lev,
             "acceptable_price": amm.MAX_ACCEPTABLE if side == "long" else 1, "idempotency_key": key,
             "district_id": DISTRICTS[user], "now": self.now},
        )  # fmt: skip
        if not isinstance(opened, OpenResult):
            return
        assert not opened.replay
        closed = self.both(
            "close",
            {"user_id": user, "position_id": opened.position_id, "instrument_id": iid,
             "acceptable_price": 1 if side == "long" else amm.MAX_ACCEPTABLE, "idempotency_key": key + "c",
             "district_id": DISTRICTS[user], "now": self.now},
        )  # fmt: skip
        if not isinstance(closed, CloseResult):
            return
        assert not closed.replay
        change = closed.available + closed.locked - money
        fees = opened.fee + closed.fee
        assert change <= 0, "a round trip at a constant index made a profit"
        assert -fees - 2 <= change, (opened, closed, fees, change)
        if closed.payout > 0:
            assert change <= -fees

    # ---- invariants, after every step ----

    @invariant()
    def redis_equals_the_model(self) -> None:
        m, k = self.model, self.keys

        async def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for user in m.wallets:
                pipe.hgetall(k.wallet(user))
            pipe.hgetall(k.wallet(0))
            for iid in m.instruments:
                pipe.hgetall(k.instrument(iid))
            for pid in m.positions:
                pipe.hgetall(k.position(pid))
            pipe.xrange(k.outbox)
            return list(await pipe.execute())

        raw = [
            {f.decode(): v.decode() for f, v in h.items()} if isinstance(h, dict) else h
            for h in self.run(read())
        ]
        it = iter(raw)
        total = 0
        for user, w in m.wallets.items():
            got = next(it)
            assert (int(got["available"]), int(got["locked"]), int(got["equity"]), int(got["seq"])) == (
                w.available, w.locked, w.equity, w.seq,
            ), user  # fmt: skip
            assert int(got["available"]) >= 0 and int(got["locked"]) >= 0, "a user balance went negative"
            total += int(got["available"]) + int(got["locked"])
        house = next(it)
        assert int(house["available"]) == m.house.available
        total += int(house["available"]) + int(house.get("locked", "0"))
        assert total == self.total == m.total_money(), "money is not conserved"
        for iid, ins in m.instruments.items():
            got = next(it)
            assert {f: got[f] for f in ("index", "index_ts", "skew", "status", "long", "short", "pseq")} == {
                "index": str(ins.index), "index_ts": str(ins.index_ts), "skew": str(ins.skew),
                "status": ins.status, "long": str(ins.long), "short": str(ins.short), "pseq": str(ins.pseq),
            }, iid  # fmt: skip
            longs = sum(p.qty for p in m.positions.values() if p.instrument == iid and p.side == "long")
            shorts = sum(p.qty for p in m.positions.values() if p.instrument == iid and p.side == "short")
            assert int(got["skew"]) == longs - shorts == int(got["long"]) - int(got["short"])
            # no |skew| <= cap here: only opens are capped, a close or a liquidation may pass it
        for pid, pos in m.positions.items():
            got = next(it)
            want = {
                "user": pos.user, "instrument": pos.instrument, "side": pos.side, "qty": pos.qty,
                "entry_price": pos.entry_price, "entry_notional": pos.entry_notional, "margin": pos.margin,
                "leverage": pos.leverage, "status": pos.status, "realised_pnl": pos.realised_pnl,
                "seq": pos.seq, "opened_ts": pos.opened_ts,
            }  # fmt: skip
            if pos.closed_ts is not None:
                want["closed_ts"] = pos.closed_ts
            assert got == {f: str(v) for f, v in want.items()}, pid
            assert pos.qty >= 0 and pos.margin >= 0
        entries = [{f.decode(): v.decode() for f, v in e[1].items()} for e in next(it)]
        assert entries == m.outbox
        keyed = [(e["user_id"], e["idempotency_key"]) for e in entries if e["idempotency_key"]]
        assert len(keyed) == len(set(keyed)), "two trades for one idempotency key"


def test_trading_state_machine(redis_url: str) -> None:
    loop = asyncio.new_event_loop()
    client = aioredis.Redis.from_url(redis_url)
    try:
        scripts = Scripts(client)
        loop.run_until_complete(scripts.load_all())
        TradingMachine.loop, TradingMachine.client, TradingMachine.scripts = loop, client, scripts
        run_state_machine_as_test(
            TradingMachine,
            settings=settings(
                max_examples=100,
                stateful_step_count=60,
                deadline=None,
                print_blob=True,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
        seen = TradingMachine.seen
        print(sorted(seen.items()))  # shown with -s: which outcomes the run reached
        assert seen["open:ok"] and seen["close:ok"] and seen["update_index:ok"]
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
