"""A pure in-memory reference model of the trade scripts: the oracle the tests compare Lua with.

It holds wallets, positions, instruments and the house, and applies open, close, liquidate and
index updates with the same checks in the same order, the same arithmetic (``amm``) and the same
replies as ``lua/*.lua``. No I/O.

Only opens are refused for the skew cap (and need |skew| < depth); a close or a liquidation is
always priced (``amm`` clamps the mark curve), however far past the cap or the depth the skew is.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

from ftl.persistence import trade_replies as r
from ftl.persistence.trade_replies import CloseResult, IndexResult, OpenResult, Rejected
from ftl.trading import amm

MAX_ID = 2**53 - 1
STATUSES = ("open", "halted", "closed")


@dataclass
class Instrument:
    id: int
    index: int
    depth: int
    cap: int
    index_ts: int = 0
    skew: int = 0
    status: str = "open"
    long: int = 0
    short: int = 0
    pseq: int = 0
    fee_bps: int | None = None


@dataclass
class Wallet:
    available: int
    locked: int = 0
    seq: int = 0
    district: int | None = None

    @property
    def equity(self) -> int:
        return self.available + self.locked


@dataclass
class Position:
    id: int
    user: int
    instrument: int
    side: amm.Side
    qty: int
    entry_price: int
    entry_notional: int
    margin: int
    leverage: int
    opened_ts: int
    status: str = "open"
    realised_pnl: int = 0
    seq: int = 0
    closed_ts: int | None = None


@dataclass
class Config:
    fee_bps: int = 10
    max_index_age_ms: int = 0
    mm_bps: int = 500


def request_hash(*parts: object) -> str:
    """The hash the scripts compute with ``redis.sha1hex`` over the normalised request."""
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()  # noqa: S324


@dataclass
class Model:
    """The whole hot state of the trade scripts, in memory."""

    config: Config = field(default_factory=Config)
    instruments: dict[int, Instrument] = field(default_factory=dict)
    wallets: dict[int, Wallet] = field(default_factory=dict)
    positions: dict[int, Position] = field(default_factory=dict)
    house: Wallet = field(default_factory=lambda: Wallet(available=0))
    trade_seq: int = 0
    position_seq: int = 0
    idempotency: dict[tuple[int, str], tuple[str, OpenResult | CloseResult]] = field(default_factory=dict)
    outbox: list[dict[str, str]] = field(default_factory=list)
    published: list[dict[str, object]] = field(default_factory=list)
    epoch: str = "1"
    """The boot marker's value (the Redis incarnation) every trade carries."""

    # ---- checks shared by the scripts, in the scripts' order ----

    def _fee_bps(self, ins: Instrument) -> int:
        return self.config.fee_bps if ins.fee_bps is None else ins.fee_bps

    def _instrument_check(self, iid: int, now: int, *, opening: bool) -> Instrument | Rejected:
        ins = self.instruments.get(iid)
        if ins is None:
            return Rejected(r.UNKNOWN_INSTRUMENT)
        fee_ok = ins.fee_bps is None or 0 <= ins.fee_bps <= amm.MAX_FEE_BPS
        if opening:  # an open needs a sane cap and |skew| < depth
            skew_ok = 0 <= ins.cap < ins.depth and abs(ins.skew) < ins.depth
        else:  # a close or a liquidation only needs a skew it can price
            skew_ok = abs(ins.skew) <= amm.MAX_SKEW
        if not (1 <= ins.index <= amm.MAX_PRICE and 1 <= ins.depth <= amm.MAX_DEPTH and skew_ok and fee_ok):
            return Rejected(r.INSTRUMENT_BOUNDS)
        if ins.status == "halted":
            return Rejected(r.HALTED)
        if ins.status != "open":
            return Rejected(r.INSTRUMENT_CLOSED)
        max_age = self.config.max_index_age_ms
        if max_age > 0 and now - ins.index_ts > max_age:
            return Rejected(r.STALE_INDEX)
        return ins

    def _wallet_check(self, user: int, district: int | None) -> Wallet | Rejected:
        w = self.wallets.get(user)
        if w is None:
            return Rejected(r.NO_WALLET)
        if w.district != district:
            return Rejected(r.DISTRICT_MISMATCH)
        return w

    def _publish(self, ins: Instrument, ts: int) -> None:
        ins.pseq += 1
        self.published.append(
            {
                "type": "PRICE_UPDATE",
                "id": ins.id,
                "price": amm.mark(ins.index, ins.skew, ins.depth),
                "index": ins.index,
                "skew": ins.skew,
                "seq": ins.pseq,
                "ts": ts,
            }
        )

    def _outbox(self, trade: dict[str, object], pos: Position, w: Wallet, prev_seq: int) -> dict[str, str]:
        entry = {k: str(v) for k, v in trade.items()}
        entry.update(
            pos_qty=str(pos.qty),
            pos_entry_price=str(pos.entry_price),
            pos_entry_notional=str(pos.entry_notional),
            pos_margin=str(pos.margin),
            pos_realised_pnl=str(pos.realised_pnl),
            pos_status=pos.status,
            pos_seq=str(pos.seq),
            pos_opened_ts=str(pos.opened_ts),
            pos_closed_ts="" if pos.closed_ts is None else str(pos.closed_ts),
            w_available=str(w.available),
            w_locked=str(w.locked),
            house_available=str(self.house.available),
            epoch=self.epoch,
            prev_seq=str(prev_seq),
        )
        self.outbox.append(entry)
        return entry

    # ---- operations ----

    def open(
        self,
        *,
        user_id: int,
        instrument_id: int,
        side: str,
        qty: int,
        leverage: int,
        acceptable_price: int,
        idempotency_key: str,
        now: int,
        district_id: int | None = None,
    ) -> OpenResult | Rejected:
        if not 1 <= user_id <= MAX_ID:
            return Rejected(r.BAD_USER)
        if not 1 <= instrument_id <= MAX_ID:
            return Rejected(r.BAD_ARGS)
        if side not in ("long", "short"):
            return Rejected(r.BAD_SIDE)
        if not 1 <= qty <= amm.MAX_QTY:
            return Rejected(r.BAD_QTY)
        if not amm.MIN_LEVERAGE <= leverage <= amm.MAX_LEVERAGE:
            return Rejected(r.BAD_LEVERAGE)
        if not 1 <= acceptable_price <= amm.MAX_ACCEPTABLE:
            return Rejected(r.BAD_PRICE)
        if not 0 <= self.config.fee_bps <= amm.MAX_FEE_BPS:
            return Rejected(r.BAD_ARGS)
        rh = request_hash("open", user_id, instrument_id, side, qty, leverage, acceptable_price)
        seen = self.idempotency.get((user_id, idempotency_key))
        if seen is not None:
            if seen[0] != rh or not isinstance(seen[1], OpenResult):
                return Rejected(r.CONFLICT)
            return dataclasses.replace(seen[1], replay=True)
        ins = self._instrument_check(instrument_id, now, opening=True)
        if isinstance(ins, Rejected):
            return ins
        w = self._wallet_check(user_id, district_id)
        if isinstance(w, Rejected):
            return w
        s: amm.Side = "long" if side == "long" else "short"
        q = amm.signed_qty(s, qty)
        if not amm.within_cap(ins.skew, q, ins.cap):
            return Rejected(r.SKEW_CAP)
        if not amm.slippage_ok(ins.index, ins.skew, ins.depth, q, acceptable_price):
            return Rejected(r.SLIPPAGE)
        quote = amm.quote(ins.index, ins.skew, ins.depth, s, qty, leverage, self._fee_bps(ins))
        if w.available < quote.cost:
            return Rejected(r.INSUFFICIENT_FUNDS)

        self.trade_seq += 1
        self.position_seq += 1
        tid, pid = self.trade_seq, self.position_seq
        prev_seq = w.seq
        w.available -= quote.cost
        w.locked += quote.margin
        w.seq = tid
        self.house.available += quote.fee
        self.house.seq = tid
        ins.skew += q
        if q > 0:
            ins.long += qty
        else:
            ins.short += qty
        pos = Position(
            id=pid,
            user=user_id,
            instrument=instrument_id,
            side=s,
            qty=qty,
            entry_price=quote.price,
            entry_notional=quote.notional,
            margin=quote.margin,
            leverage=leverage,
            opened_ts=now,
            seq=tid,
        )
        self.positions[pid] = pos
        entry = self._outbox(
            {
                "trade_id": tid, "kind": "open", "user_id": user_id, "position_id": pid,
                "instrument_id": instrument_id, "side": side, "qty": qty,
                "price": quote.price, "notional": quote.notional, "fee": quote.fee,
                "margin": quote.margin, "realised_pnl": 0, "payout": 0, "leverage": leverage,
                "index_price": ins.index, "skew_after": ins.skew,
                "idempotency_key": idempotency_key, "request_hash": rh, "ts": now,
            },
            pos,
            w,
            prev_seq,
        )  # fmt: skip
        self._publish(ins, now)
        result = OpenResult(
            replay=False,
            trade_id=tid,
            position_id=pid,
            instrument_id=instrument_id,
            side=side,
            qty=qty,
            price=quote.price,
            notional=quote.notional,
            fee=quote.fee,
            margin=quote.margin,
            leverage=leverage,
            available=w.available,
            locked=w.locked,
            equity=w.equity,
            skew=ins.skew,
            mark=amm.mark(ins.index, ins.skew, ins.depth),
            index=ins.index,
            ts=now,
            entry=entry,
        )
        self.idempotency[(user_id, idempotency_key)] = (rh, result)
        return result

    def _position_check(self, user: int, pid: int, iid: int) -> Position | Rejected:
        pos = self.positions.get(pid)
        if pos is None:
            return Rejected(r.NOT_FOUND)
        if pos.user != user:
            return Rejected(r.NOT_OWNER)
        if pos.status != "open":
            return Rejected(r.NOT_OPEN)
        if pos.instrument != iid:
            return Rejected(r.WRONG_INSTRUMENT)
        return pos

    def close(
        self,
        *,
        user_id: int,
        position_id: int,
        instrument_id: int,
        acceptable_price: int,
        idempotency_key: str,
        now: int,
        qty: int | None = None,
        district_id: int | None = None,
    ) -> CloseResult | Rejected:
        want = 0 if qty is None else qty
        if not 1 <= user_id <= MAX_ID:
            return Rejected(r.BAD_USER)
        if not (1 <= position_id <= MAX_ID and 1 <= instrument_id <= MAX_ID):
            return Rejected(r.BAD_ARGS)
        if not 0 <= want <= amm.MAX_QTY:
            return Rejected(r.BAD_QTY)
        if not 1 <= acceptable_price <= amm.MAX_ACCEPTABLE:
            return Rejected(r.BAD_PRICE)
        rh = request_hash("close", user_id, position_id, instrument_id, want, acceptable_price)
        seen = self.idempotency.get((user_id, idempotency_key))
        if seen is not None:
            if seen[0] != rh or not isinstance(seen[1], CloseResult):
                return Rejected(r.CONFLICT)
            return dataclasses.replace(seen[1], replay=True)
        pos = self._position_check(user_id, position_id, instrument_id)
        if isinstance(pos, Rejected):
            return pos
        k = pos.qty if want == 0 else want
        if k > pos.qty:
            return Rejected(r.BAD_QTY)
        ins = self._instrument_check(instrument_id, now, opening=False)
        if isinstance(ins, Rejected):
            return ins
        w = self._wallet_check(user_id, district_id)
        if isinstance(w, Rejected):
            return w
        q = amm.close_q(pos.side, k)  # never refused for the skew cap
        if not amm.slippage_ok(ins.index, ins.skew, ins.depth, q, acceptable_price):
            return Rejected(r.SLIPPAGE)
        result = self._fill_close(pos, ins, w, k, "close", idempotency_key, rh, now)
        self.idempotency[(user_id, idempotency_key)] = (rh, result)
        return result

    def liquidate(
        self,
        *,
        position_id: int,
        user_id: int,
        instrument_id: int,
        now: int,
        district_id: int | None = None,
    ) -> CloseResult | Rejected:
        if not 1 <= user_id <= MAX_ID:
            return Rejected(r.BAD_USER)
        if not (1 <= position_id <= MAX_ID and 1 <= instrument_id <= MAX_ID):
            return Rejected(r.BAD_ARGS)
        if not (0 <= self.config.mm_bps <= amm.MAX_MM_BPS):
            return Rejected(r.BAD_ARGS)
        pos = self._position_check(user_id, position_id, instrument_id)
        if isinstance(pos, Rejected):
            return pos
        ins = self._instrument_check(instrument_id, now, opening=False)
        if isinstance(ins, Rejected):
            return ins
        w = self._wallet_check(user_id, district_id)
        if isinstance(w, Rejected):
            return w
        m = amm.mark(ins.index, ins.skew, ins.depth)
        if not amm.is_liquidatable(pos.side, pos.qty, pos.entry_notional, pos.margin, m, self.config.mm_bps):
            return Rejected(r.NOT_LIQUIDATABLE)
        return self._fill_close(pos, ins, w, pos.qty, "liquidation", "", "", now)

    def _fill_close(
        self,
        pos: Position,
        ins: Instrument,
        w: Wallet,
        k: int,
        kind: str,
        idempotency_key: str,
        rh: str,
        now: int,
    ) -> CloseResult:
        c = amm.close_amounts(
            ins.index, ins.skew, ins.depth, pos.side, pos.qty, pos.entry_notional, pos.margin,
            k, self._fee_bps(ins),
        )  # fmt: skip
        self.trade_seq += 1
        tid = self.trade_seq
        prev_seq = w.seq
        w.available += c.payout
        w.locked -= c.released
        w.seq = tid
        self.house.available += c.house_gain
        self.house.seq = tid
        ins.skew += amm.close_q(pos.side, k)
        if pos.side == "long":
            ins.long -= k
        else:
            ins.short -= k
        pos.qty -= k
        pos.entry_notional -= c.entry_part
        pos.margin -= c.released
        pos.realised_pnl += c.realised_pnl
        pos.seq = tid
        if pos.qty == 0:
            pos.status = "liquidated" if kind == "liquidation" else "closed"
            pos.closed_ts = now
        entry = self._outbox(
            {
                "trade_id": tid, "kind": kind, "user_id": pos.user, "position_id": pos.id,
                "instrument_id": ins.id, "side": pos.side, "qty": k, "price": c.price,
                "notional": c.notional, "fee": c.fee, "margin": c.released,
                "realised_pnl": c.realised_pnl, "payout": c.payout, "leverage": pos.leverage,
                "index_price": ins.index, "skew_after": ins.skew,
                "idempotency_key": idempotency_key, "request_hash": rh, "ts": now,
            },
            pos,
            w,
            prev_seq,
        )  # fmt: skip
        self._publish(ins, now)
        return CloseResult(
            replay=False,
            kind=kind,
            trade_id=tid,
            position_id=pos.id,
            instrument_id=ins.id,
            side=pos.side,
            qty=k,
            remaining_qty=pos.qty,
            status=pos.status,
            price=c.price,
            notional=c.notional,
            fee=c.fee,
            margin=c.released,
            realised_pnl=c.realised_pnl,
            payout=c.payout,
            available=w.available,
            locked=w.locked,
            equity=w.equity,
            skew=ins.skew,
            mark=amm.mark(ins.index, ins.skew, ins.depth),
            index=ins.index,
            ts=now,
            entry=entry,
        )

    def update_index(
        self,
        *,
        instrument_id: int,
        index_price: int | None,
        ts: int | None = None,
        status: str | None = None,
    ) -> IndexResult | Rejected:
        if not 1 <= instrument_id <= MAX_ID:
            return Rejected(r.BAD_ARGS)
        if index_price is not None:
            if not 1 <= index_price <= amm.MAX_PRICE:
                return Rejected(r.BAD_PRICE)
            if ts is None or not 0 <= ts <= MAX_ID:
                return Rejected(r.BAD_ARGS)
        if status and status not in STATUSES:
            return Rejected(r.BAD_STATUS)
        if index_price is None and not status:
            return Rejected(r.BAD_ARGS)
        ins = self.instruments.get(instrument_id)
        if ins is None:
            return Rejected(r.UNKNOWN_INSTRUMENT)
        index_ok = index_price is not None or 1 <= ins.index <= amm.MAX_PRICE  # the mark needs one
        if not (1 <= ins.depth <= amm.MAX_DEPTH and abs(ins.skew) <= amm.MAX_SKEW and index_ok):
            return Rejected(r.INSTRUMENT_BOUNDS)
        if index_price is not None and ts is not None:
            if ts < ins.index_ts:
                return Rejected(r.STALE_TICK)
            ins.index, ins.index_ts = index_price, ts
        if status:
            ins.status = status
        self._publish(ins, ins.index_ts)
        return IndexResult(
            instrument_id=instrument_id,
            index=ins.index,
            index_ts=ins.index_ts,
            status=ins.status,
            skew=ins.skew,
            mark=amm.mark(ins.index, ins.skew, ins.depth),
            pseq=ins.pseq,
        )

    # ---- invariants ----

    def total_money(self) -> int:
        """Σ available + Σ locked over users, plus the house: constant across every operation."""
        users = sum(w.available + w.locked for w in self.wallets.values())
        return users + self.house.available + self.house.locked
