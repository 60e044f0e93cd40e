"""Positions and instrument markets as the flusher's mark passes read them from Redis hashes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ftl.trading import amm

CHUNK = 500  # positions or users a pipeline: the event loop (the flush loop) gets a turn between
POS_FIELDS = ("user", "instrument", "side", "qty", "entry_notional", "margin", "status")


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_field(entry: Mapping[Any, Any], name: str) -> str | None:
    value = entry.get(name.encode(), entry.get(name))
    return None if value is None else text(value)


@dataclass(frozen=True, slots=True)
class Pos:
    """The fields of a position hash the passes need."""

    id: int
    user: int
    instrument: int
    side: amm.Side
    qty: int
    entry_notional: int
    margin: int
    status: str

    @property
    def open(self) -> bool:
        return self.status == "open" and self.qty > 0


def parse_pos(pid: int, raw: Sequence[Any]) -> Pos | None:
    """The position from its hash's ``POS_FIELDS`` (HMGET reply); None when the hash is gone."""
    if raw[0] is None or raw[1] is None:
        return None
    side = text(raw[2])
    return Pos(
        pid, int(raw[0]), int(raw[1]), "short" if side == "short" else "long",
        int(raw[3] or 0), int(raw[4] or 0), int(raw[5] or 0), text(raw[6] or b""),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Market:
    index: int
    skew: int
    depth: int
    status: str

    @property
    def mark(self) -> int:
        return amm.mark(self.index, self.skew, self.depth)

    @property
    def state(self) -> str:
        return f"{self.mark}:{self.status}"


def chunks(items: Sequence[Any], n: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
