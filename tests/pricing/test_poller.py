"""The poller against the fake Sportmonks server: schedule, faults, metrics, apply, one leader."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from ftl.persistence.keys import Keys
from ftl.persistence.leader import LeaderLock
from ftl.persistence.scripts import Scripts
from ftl.pricing.model import IndexChange, LiveSnapshot
from ftl.pricing.normalise import Normaliser
from ftl.pricing.parse import parse_livescores
from ftl.pricing.poller import Poller, PollerConfig, PollerMetrics
from ftl.pricing.sportmonks import SportmonksClient
from tests.helpers import await_for
from tests.pricing.conftest import FakeTime, states
from tests.pricing.fake_sportmonks import TOKEN, FakeSportmonks, Match, Reply, body, rate_limited

pytestmark = pytest.mark.anyio

CFG = PollerConfig(live_interval_s=2.0, idle_interval_s=30.0, backoff_base_s=1.0, backoff_max_s=8.0)


class Sink:
    """The ``apply`` callback: records every batch; can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[IndexChange]] = []
        self.fail = False

    async def __call__(self, changes: list[IndexChange]) -> None:
        if self.fail:
            raise ConnectionError("redis down")
        self.batches.append(changes)

    @property
    def last(self) -> list[IndexChange]:
        return self.batches[-1]


@pytest.fixture
async def feed(fake: FakeSportmonks) -> AsyncIterator[SportmonksClient]:
    client = SportmonksClient(fake.url, TOKEN, timeout_s=0.3)
    try:
        yield client
    finally:
        await client.aclose()


def make_poller(
    feed: SportmonksClient, sink: Sink, fake_time: FakeTime, metrics: PollerMetrics, *players: int
) -> Poller:
    return Poller(
        feed,
        Normaliser.from_states(states(*(players or (1, 2, 3)))),
        sink,
        config=CFG,
        clock=fake_time.clock,
        wall_ms=fake_time.wall_ms,
        sleep=fake_time.sleep,
        rng=random.Random(7),
        metrics=metrics,
    )


async def test_fixture_goes_live_ratings_drift_then_finishes(
    fake: FakeSportmonks, feed: SportmonksClient, fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    sink = Sink()
    poller = make_poller(feed, sink, fake_time, metrics)
    assert await poller.poll_once() == CFG.idle_interval_s  # nothing live: slow schedule check
    assert sink.batches == []

    match = Match(9, [1, 2], [3])
    fake.set_current(body(match))
    assert await poller.poll_once() == CFG.live_interval_s  # live, no ratings yet: no change
    assert sink.batches == []

    match.rate(p1=7.0, p3=6.0)
    fake.set_current(body(match))
    assert await poller.poll_once() == CFG.live_interval_s
    moved = {c.player_id: c for c in sink.last}
    assert set(moved) == {1, 3}
    assert moved[1].index_cents > 1000 > moved[3].index_cents
    assert moved[1].instrument_id == 1_000_001 and moved[1].ts_ms == fake_time.wall_ms()

    batches = len(sink.batches)
    await poller.poll_once()  # same ratings: no price moves
    assert len(sink.batches) == batches
    match.rate(p1=7.2)
    fake.set_current(body(match))
    await poller.poll_once()
    assert [c.player_id for c in sink.last] == [1]
    assert sink.last[0].index_cents > moved[1].index_cents

    match.state_id = 5  # full time
    fake.set_current(body(match))
    assert await poller.poll_once() == CFG.idle_interval_s
    assert poller.last_good_age() == 0.0
    assert metrics.changes._value.get() == 3


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Reply(status=500, body={"message": "boom"}), "server_error"),
        (Reply(status=502, raw=b"bad gateway"), "server_error"),
        (Reply(raw=b"{not json"), "malformed"),
        (Reply(body={"data": [{"id": 9}]}), "malformed"),
        (Reply(body=body(), delay_s=2.0), "timeout"),
    ],
)
async def test_retryable_faults_back_off_with_jitter_and_move_nothing(
    fake: FakeSportmonks,
    feed: SportmonksClient,
    fake_time: FakeTime,
    metrics: PollerMetrics,
    fault: Reply,
    kind: str,
) -> None:
    sink = Sink()
    poller = make_poller(feed, sink, fake_time, metrics)
    match = Match(9, [1, 2], [3])
    match.rate(p1=6.8)
    fake.set_current(body(match))
    await poller.poll_once()
    prices = poller.normaliser.prices()
    match.rate(p1=7.5, p2=7.5)
    fake.set_current(body(match))  # would move prices if it were served
    delays = []
    for _ in range(4):
        fake.push(fault)
        delays.append(await poller.poll_once())
    assert metrics.error_count(kind) == 4
    assert len(sink.batches) == 1 and poller.normaliser.prices() == prices
    caps = [1.0, 2.0, 4.0, 8.0]
    for delay, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= delay <= cap
    assert poller.last_good_age() == 0.0  # the fake clock did not move; age counts from the good poll
    assert await poller.poll_once() == CFG.live_interval_s  # recovered: the new ratings go through
    assert poller.failures == 0
    assert {c.player_id for c in sink.last} == {1, 2}


async def test_backoff_is_jittered() -> None:
    poller = Poller(
        Spy(), Normaliser.from_states({}), Sink(), config=CFG, metrics=PollerMetrics(CollectorRegistry())
    )
    poller.failures = 3
    delays = {poller.backoff() for _ in range(20)}
    assert len(delays) > 10 and all(2.0 <= d <= 4.0 for d in delays)


async def test_429_waits_resets_in_seconds(
    fake: FakeSportmonks, feed: SportmonksClient, fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    sink = Sink()
    poller = make_poller(feed, sink, fake_time, metrics)
    match = Match(9, [1], [])
    match.rate(p1=6.9)
    fake.set_current(body(match))
    fake.push(rate_limited(37))
    assert await poller.poll_once() == 37
    assert sink.batches == [] and metrics.error_count("rate_limited") == 1
    assert await poller.poll_once() == CFG.live_interval_s
    assert len(sink.batches) == 1


async def test_slows_down_when_remaining_runs_low(
    fake: FakeSportmonks, feed: SportmonksClient, fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    poller = make_poller(feed, Sink(), fake_time, metrics)
    match = Match(9, [1], [])
    fake.set_current(body(match, remaining=2000, resets_in_seconds=1800))
    assert await poller.poll_once() == CFG.live_interval_s
    fake.set_current(body(match, remaining=50, resets_in_seconds=1000))
    assert await poller.poll_once() == pytest.approx(20.0)  # 50 calls spread over 1000 s
    fake.set_current(body(match, remaining=0, resets_in_seconds=300))
    assert await poller.poll_once() == pytest.approx(300.0)


async def test_wrong_token_waits_and_counts(
    fake: FakeSportmonks, fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    sink = Sink()
    client = SportmonksClient(fake.url, "not-the-token", timeout_s=1.0)
    try:
        poller = make_poller(client, sink, fake_time, metrics)
        fake.set_current(body(Match(9, [1], [])))
        assert await poller.poll_once() == CFG.unauthorized_wait_s
    finally:
        await client.aclose()
    assert metrics.error_count("unauthorized") == 1 and sink.batches == []


async def test_missing_details_and_unknown_players(
    fake: FakeSportmonks, feed: SportmonksClient, fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    sink = Sink()
    poller = make_poller(feed, sink, fake_time, metrics, 1, 2)
    match = Match(9, [1, 2], [555])  # 555 has no instrument
    match.rate(p1=7.0, p2=7.0, p555=9.9)
    match.without_details = {2}
    fake.set_current(body(match))
    await poller.poll_once()
    assert sink.batches == [] and metrics.error_count("malformed") == 1  # partial: no ratings at all
    match.without_details = set()
    fake.set_current(body(match))
    await poller.poll_once()
    assert {c.player_id for c in sink.last} == {1, 2}
    assert metrics.error_count("unknown_player") == 1


async def test_failed_apply_is_retried_with_the_next_poll(
    fake: FakeSportmonks, feed: SportmonksClient, fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    sink = Sink()
    poller = make_poller(feed, sink, fake_time, metrics)
    match = Match(9, [1, 2], [])
    match.rate(p1=7.0, p2=6.0)
    fake.set_current(body(match))
    sink.fail = True
    await poller.poll_once()
    assert metrics.error_count("apply") == 1 and sink.batches == []
    sink.fail = False
    match.rate(p1=7.3)
    fake.set_current(body(match))
    await poller.poll_once()
    by_player = {c.player_id: c for c in sink.last}
    assert set(by_player) == {1, 2}  # 2's change was kept; 1's newest change wins
    assert by_player[1].rating == 7.3 and by_player[2].rating == 6.0


async def test_goal_halts_the_fixture_for_a_few_seconds(
    fake: FakeSportmonks, feed: SportmonksClient, fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    sink = Sink()
    poller = make_poller(feed, sink, fake_time, metrics)
    match = Match(9, [1, 2], [])
    fake.set_current(body(match))
    await poller.poll_once()
    match.goal(1, minute=33)
    fake.set_current(body(match))
    await poller.poll_once()
    halt_ms = poller.normaliser.cfg.halt_ms
    assert {(c.player_id, c.status) for c in sink.last} == {(1, "halted"), (2, "halted")}
    assert all(c.halt_until_ms == fake_time.wall_ms() + halt_ms for c in sink.last)
    fake_time.now += halt_ms / 1000
    await poller.poll_once()
    assert {(c.player_id, c.status) for c in sink.last} == {(1, "open"), (2, "open")}


class Spy:
    """A feed that counts fetches and serves one live fixture."""

    def __init__(self) -> None:
        self.fetches = 0

    async def fetch(self) -> LiveSnapshot:
        self.fetches += 1
        return parse_livescores(body(Match(9, [1], [])))

    async def aclose(self) -> None:
        return None


async def test_exactly_one_poller_polls_and_the_other_takes_over(
    redis_client: aioredis.Redis, scripts: Scripts, keys: Keys
) -> None:
    cfg = PollerConfig(
        live_interval_s=0.02, idle_interval_s=0.02, lock_ttl_ms=300, renew_every_s=0.05, follower_retry_s=0.02
    )
    feeds = [Spy(), Spy()]
    pollers = [
        Poller(
            feed,
            Normaliser.from_states(states(1)),
            Sink(),
            LeaderLock(scripts, keys, "pricing-poller", ttl_ms=cfg.lock_ttl_ms),
            config=cfg,
            metrics=PollerMetrics(CollectorRegistry()),
        )
        for feed in feeds
    ]
    tasks = [asyncio.create_task(p.run()) for p in pollers]
    try:
        await await_for(lambda: _true(sum(f.fetches for f in feeds) >= 10), 5, "10 polls")
        leaders = [p.is_leader for p in pollers]
        assert leaders.count(True) == 1
        leader = leaders.index(True)
        follower = 1 - leader
        assert feeds[follower].fetches == 0
        # the leader dies without releasing its lock: the other takes over after the expiry
        dead = pollers[leader]
        assert dead.lock is not None
        dead.lock.release = _no_release  # type: ignore[method-assign]
        tasks[leader].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[leader]
        assert await redis_client.get(keys.lock("pricing-poller")) == dead.lock.token.encode()
        before = feeds[leader].fetches
        await await_for(lambda: _true(feeds[follower].fetches >= 5), 5, "the follower to take over")
        assert pollers[follower].is_leader
        assert feeds[leader].fetches == before
    finally:
        for p in pollers:
            p.stop()
        for t in tasks:
            if not t.done():
                await asyncio.wait_for(t, 5)


async def _no_release() -> bool:
    return False


async def _true(value: bool) -> bool:
    return value
