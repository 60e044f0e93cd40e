"""Fixtures of the pricing tests: the fake Sportmonks server, a fake clock, fresh metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from ftl.pricing.normalise import PlayerState
from ftl.pricing.poller import PollerMetrics
from tests.pricing.fake_sportmonks import FakeSportmonks


class FakeTime:
    """Monotonic seconds and wall ms that move only when the code under test sleeps."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return int(self.now * 1000)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def fake() -> Iterator[FakeSportmonks]:
    server = FakeSportmonks().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def metrics() -> PollerMetrics:
    return PollerMetrics(CollectorRegistry())


def states(*player_ids: int, price: int = 1000) -> dict[int, PlayerState]:
    """Player ``pid`` trades as instrument ``pid + 1_000_000`` at ``price`` cents."""
    return {pid: PlayerState(pid + 1_000_000, price, price) for pid in player_ids}
