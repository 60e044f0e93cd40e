"""How much CPU the trade route's contract costs: decode + validate the open body, encode the reply.

Compares, in one run on the same bodies: the stdlib path the api used before the declared
contracts (``json.loads`` with a duplicate-key hook, then field checks by hand, ``json.dumps`` of a
dict), msgspec (``ftl/web/decode.py`` and ``ftl/web/replies.py`` as the api runs them) and, when
importable, pydantic v2 (``model_validate_json`` / ``model_dump_json`` with the same bounds).
Medians of ``--repeats`` timings of ``--loops`` calls each. Not part of the product.

    python -m scripts.bench_bodies            # add --pydantic-path DIR for a pydantic outside the venv
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ftl import limits
from ftl.web import bodies, decode
from ftl.web import replies as out

BODY = b'{"instrument_id":1234,"side":"long","qty":25,"leverage":3,"acceptable_price":123456}'
REPLY = out.TradeReply(
    out.Position(987654, 1234, "long", 25, "open", entry_price=101234, margin=843616, leverage=3),
    out.Trade(123456789, "open", 987654, 1234, "long", 25, 101234, 2530850, 2530, 843616, 1765000000000),
    out.Wallet(99_000_000, 843_616, 99_843_616),
)


def stdlib_decode(raw: bytes) -> dict[str, Any]:
    """The api's body check before msgspec (ftl/web/validate.py at 767b341), inlined."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out_: dict[str, Any] = {}
        for k, v in pairs:
            if k in out_:
                raise ValueError(k)
            out_[k] = v
        return out_

    def no_constant(name: str) -> Any:
        raise ValueError(name)

    body = json.loads(raw, parse_constant=no_constant, object_pairs_hook=unique)
    if not isinstance(body, dict):
        raise ValueError("object")
    fields = ("instrument_id", "side", "qty", "leverage", "acceptable_price")
    if set(body) - set(fields) or any(f not in body for f in fields):
        raise ValueError("fields")

    def integer(name: str, lo: int, hi: int) -> int:
        value = body[name]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(name)
        return value

    if body["side"] not in ("long", "short"):
        raise ValueError("side")
    return {
        "instrument_id": integer("instrument_id", 1, bodies.MAX_ID),
        "side": body["side"],
        "qty": integer("qty", 1, limits.MAX_QTY),
        "leverage": integer("leverage", limits.MIN_LEVERAGE, limits.MAX_LEVERAGE),
        "acceptable_price": integer("acceptable_price", 1, limits.MAX_ACCEPTABLE),
    }


def stdlib_encode() -> bytes:
    plain = msgspec.to_builtins(REPLY)  # the same dict the routes built by hand
    return lambda: json.dumps(plain, separators=(",", ":")).encode()  # type: ignore[return-value]


def pydantic_pair() -> tuple[Callable[[], Any], Callable[[], bytes]] | None:
    try:
        from typing import Annotated, Literal

        import pydantic
    except ImportError:
        return None

    class Open(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid", strict=True)
        instrument_id: Annotated[int, pydantic.Field(ge=1, le=bodies.MAX_ID)]
        side: Literal["long", "short"]
        qty: Annotated[int, pydantic.Field(ge=1, le=limits.MAX_QTY)]
        leverage: Annotated[int, pydantic.Field(ge=limits.MIN_LEVERAGE, le=limits.MAX_LEVERAGE)]
        acceptable_price: Annotated[int, pydantic.Field(ge=1, le=limits.MAX_ACCEPTABLE)]

    class Reply(pydantic.BaseModel):
        position: dict[str, Any]
        trade: dict[str, Any]
        wallet: dict[str, int]

    reply = Reply.model_validate(msgspec.to_builtins(REPLY))
    return (lambda: Open.model_validate_json(BODY)), reply.model_dump_json  # type: ignore[return-value]


def per_call_us(fn: Callable[[], Any], loops: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter() - start) / loops * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pydantic-path", help="a folder holding pydantic (pip install --target)")
    args = parser.parse_args()
    if args.pydantic_path:
        sys.path.append(args.pydantic_path)

    assert decode.decode(BODY, bodies.OpenPosition).qty == stdlib_decode(BODY)["qty"] == 25
    rows = [
        ("stdlib (before)", lambda: stdlib_decode(BODY), stdlib_encode()),
        (
            "msgspec (now)",
            lambda: decode.decode(BODY, bodies.OpenPosition),
            lambda: msgspec.json.encode(REPLY),
        ),
    ]
    pair = pydantic_pair()
    if pair is not None:
        rows.append(("pydantic v2", *pair))
    results = [
        (name, per_call_us(dec, args.loops, args.repeats), per_call_us(enc, args.loops, args.repeats))
        for name, dec, enc in rows
    ]
    base = results[0][1] + results[0][2]
    print(f"trade body decode+validate and reply encode, median of {args.repeats} x {args.loops} calls")
    print(f"{'library':<18}{'decode µs':>11}{'encode µs':>11}{'total µs':>10}{'÷ stdlib':>10}")
    for name, dec_us, enc_us in results:
        total = dec_us + enc_us
        print(f"{name:<18}{dec_us:>11.2f}{enc_us:>11.2f}{total:>10.2f}{total / base:>10.2f}")
    if pair is None:
        print("(pydantic not importable: give --pydantic-path)")


if __name__ == "__main__":
    main()
