"""The simulated traders: sign-in, the trading loop of each strategy, and every confirmed trade."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from typing import Any

from scripts.matchday.cluster import KID
from scripts.matchday.http_client import IO_ERRORS
from scripts.matchday.replay import demo_base
from scripts.matchday.state import MatchDayState
from scripts.matchday.users import Confirmed, Position, User
from tests.auth.fake_google import mint

STRATEGIES = ("random", "momentum", "contrarian")


class TradersMixin(MatchDayState):
    """What the users do: sign in, decide, open and close positions, retry with one key."""

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
