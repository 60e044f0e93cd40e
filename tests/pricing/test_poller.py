"""The poller against the fake Sportmonks server: schedule, faults, metrics, apply, one leader."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge
from structlog.testing import capture_logs

from ftl.persistence.keys import Keys
from ftl.persistence.leader import LeaderLock
from ftl.persistence.scripts import Scripts
from ftl.pricing.budget import CallBudget
from ftl.pricing.errors import RateLimited, ServerError
from ftl.pricing.model import Fixture, IndexChange, LiveSnapshot, Pagination, RateLimit
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
        self.calls = 0
        self.fail = False

    async def __call__(self, changes: list[IndexChange]) -> None:
        if self.fail:
            raise ConnectionError("redis down")
        self.calls += 1  # every good poll (the real sink saves the normaliser's state)
        if changes:
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


def gauge(metric: Gauge) -> float:
    return float(metric.collect()[0].samples[0].value)


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
    fake_time.now += CFG.live_interval_s
    assert await poller.poll_once() == CFG.live_interval_s
    moved = {c.player_id: c for c in sink.last}
    assert set(moved) == {1, 3}
    assert moved[1].index_cents > 1000 > moved[3].index_cents
    assert moved[1].instrument_id == 1_000_001 and moved[1].ts_ms == fake_time.wall_ms()

    batches = len(sink.batches)
    await poller.poll_once()  # no time has passed: nothing moves
    assert len(sink.batches) == batches and sink.calls == 4
    match.rate(p1=7.2)
    fake.set_current(body(match))
    fake_time.now += CFG.live_interval_s
    await poller.poll_once()
    assert [c.player_id for c in sink.last] == [1, 3]  # both still catching up
    assert sink.last[0].index_cents > moved[1].index_cents

    match.state_id = 5  # full time
    fake.set_current(body(match))
    assert await poller.poll_once() == CFG.idle_interval_s
    assert poller.last_good_age() == 0.0
    assert metrics.changes._value.get() == 4


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


async def test_spreads_the_remaining_calls_until_the_reset(
    fake: FakeSportmonks, feed: SportmonksClient, fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    poller = make_poller(feed, Sink(), fake_time, metrics)
    assert CFG.reserve_calls == 100
    match = Match(9, [1], [])
    fake.set_current(body(match, remaining=2000, resets_in_seconds=1800))
    assert await poller.poll_once() == CFG.live_interval_s  # 1900 calls for 1801 s: the schedule rules
    assert gauge(metrics.calls_remaining) == 2000
    assert gauge(metrics.budget_limited) == 0
    fake.set_current(body(match, remaining=300, resets_in_seconds=999))
    assert await poller.poll_once() == pytest.approx(5.0)  # 200 calls above the reserve for 1000 s
    assert gauge(metrics.poll_interval) == pytest.approx(5.0)
    assert gauge(metrics.budget_limited) == 1
    fake.set_current(body(match, remaining=100, resets_in_seconds=300))
    assert await poller.poll_once() == pytest.approx(301.0)  # only the reserve left: wait for the reset
    fake.set_current(body(match, remaining=0, resets_in_seconds=300))
    assert await poller.poll_once() == pytest.approx(301.0)
    fake_time.now += 400  # the window the last response spoke of has reset: the plan's pace alone
    assert math.isnan(poller.calls_remaining())
    fake.set_current(body(match, remaining=0, resets_in_seconds=300))
    fake.push(Reply(body=body(match, remaining=1999, resets_in_seconds=3600)))
    assert await poller.poll_once() == CFG.live_interval_s
    assert gauge(metrics.budget_limited) == 0


async def test_logs_once_when_the_budget_slows_polling_down(
    fake_time: FakeTime, metrics: PollerMetrics
) -> None:
    feed = BudgetFeed(fake_time, remaining=300, resets_in_s=1000)
    poller = budget_poller(feed, fake_time, metrics, CFG)
    with capture_logs() as logs:
        for _ in range(5):
            await fake_time.sleep(await poller.poll_once())
    slowed = [e for e in logs if e["event"].startswith("price polling slowed down")]
    assert len(slowed) == 1 and slowed[0]["log_level"] == "warning"
    assert slowed[0]["remaining"] == 299 and slowed[0]["calls_per_hour"] == 2000


class BudgetFeed:
    """A Sportmonks stand-in with an hourly allowance (one entity): every call spends one per
    page, a call with nothing left is a 429. ``other_calls_per_hour`` are spent by other callers
    of the same entity. ``resets_in_seconds`` is reported rounded down, as whole seconds."""

    def __init__(
        self,
        fake_time: FakeTime,
        *,
        limit: int = 2000,
        remaining: int | None = None,
        resets_in_s: float = 3600.0,
        pages: int = 1,
        other_calls_per_hour: float = 0.0,
        reports: bool = True,
    ) -> None:
        self.time = fake_time
        self.limit = limit
        self.remaining = limit if remaining is None else remaining
        self.window_end = fake_time.now + resets_in_s
        self.pages = pages
        self.other_rate = other_calls_per_hour / 3600.0
        self.reports = reports
        self.calls: list[float] = []  # when each poll happened
        self.per_window: list[int] = [0]  # our calls in each window
        self.rejected = 0
        self.fail_next = 0  # this many polls answer 500 (and spend a call)
        self.bad_values: tuple[str, ...] = ()
        self._others_at = fake_time.now

    def _advance(self) -> None:
        now = self.time.now
        while now >= self.window_end:
            self._others(self.window_end)
            self.window_end += 3600.0
            self.remaining = self.limit
            self.per_window.append(0)
        self._others(now)

    def _others(self, until: float) -> None:
        spent = int((until - self._others_at) * self.other_rate)
        if spent:
            self.remaining = max(self.remaining - spent, 0)
            self._others_at += spent / self.other_rate

    async def fetch(self) -> LiveSnapshot:
        self._advance()
        self.calls.append(self.time.now)
        resets_in = int(self.window_end - self.time.now)
        if self.remaining < self.pages:
            self.rejected += 1
            raise RateLimited(resets_in)
        self.remaining -= self.pages
        self.per_window[-1] += self.pages
        if self.fail_next:
            self.fail_next -= 1
            raise ServerError(500)
        return LiveSnapshot(
            fixtures=(LIVE,),
            rate_limit=RateLimit(resets_in, self.remaining, "Fixture") if self.reports else None,
            pagination=Pagination(25 * self.pages, 25, self.pages, None, False) if self.pages > 1 else None,
            bad_values=self.bad_values,
        )

    async def aclose(self) -> None:
        return None

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.calls, self.calls[1:], strict=False)]


LIVE = Fixture(id=9, league_id=732, state_id=2, name="Live", players=(), events=())


def budget_poller(feed: BudgetFeed, fake_time: FakeTime, metrics: PollerMetrics, cfg: PollerConfig) -> Poller:
    return Poller(
        feed,
        Normaliser.from_states({}),
        Sink(),
        config=cfg,
        clock=fake_time.clock,
        wall_ms=fake_time.wall_ms,
        sleep=fake_time.sleep,
        rng=random.Random(3),
        metrics=metrics,
    )


async def run_for(poller: Poller, fake_time: FakeTime, seconds: float) -> None:
    """``poller.run()`` on the fake clock until ``seconds`` have passed."""
    end = fake_time.now + seconds
    sleep = fake_time.sleep

    async def sleep_until_end(s: float) -> None:
        await sleep(s)
        if fake_time.now >= end:
            poller.stop()

    poller.sleep = sleep_until_end
    await asyncio.wait_for(poller.run(), 60)


@pytest.mark.parametrize(
    ("live_s", "feed_kwargs"),
    [
        (2.0, {}),  # the schedule fits the plan: 1 800 calls an hour
        (1.0, {}),  # a schedule faster than the plan allows
        (2.0, {"remaining": 300, "resets_in_s": 1200.0}),  # a restart late in a spent window
        (2.0, {"other_calls_per_hour": 600.0}),  # other callers share the allowance
        (2.0, {"pages": 3}),  # three pages (calls) per poll
        (2.0, {"limit": 1000}),  # a smaller allowance than the budget setting says
    ],
)
async def test_an_hour_of_live_polling_never_hits_the_limit(
    fake_time: FakeTime, metrics: PollerMetrics, live_s: float, feed_kwargs: dict[str, float]
) -> None:
    feed = BudgetFeed(fake_time, **feed_kwargs)  # type: ignore[arg-type]
    cfg = PollerConfig(live_interval_s=live_s)
    poller = budget_poller(feed, fake_time, metrics, cfg)
    await run_for(poller, fake_time, 2 * 3600 + 600)  # two windows and a bit
    assert feed.rejected == 0 and metrics.error_count("rate_limited") == 0
    assert len(feed.per_window) == 3
    assert all(calls <= min(cfg.calls_per_hour, feed.limit) - cfg.reserve_calls for calls in feed.per_window)
    assert min(feed.gaps()) >= live_s - 1e-9  # never faster than the live interval
    # the calls are spread, not saved up: a full window is used to within a few percent
    allowed = min(3600 / live_s * feed.pages, feed.limit - cfg.reserve_calls - feed.other_rate * 3600)
    assert feed.per_window[1] >= 0.95 * allowed


async def test_a_restart_plans_from_its_first_response(fake_time: FakeTime, metrics: PollerMetrics) -> None:
    feed = BudgetFeed(fake_time, remaining=150, resets_in_s=600)
    poller = budget_poller(feed, fake_time, metrics, CFG)
    await run_for(poller, fake_time, 30)
    assert len(feed.calls) <= 3  # 49 calls above the reserve for 600 s: one every ~12 s, not every 2 s
    assert feed.gaps()[0] == pytest.approx(601 / 49)


async def test_the_budget_alone_without_rate_limit_info(fake_time: FakeTime, metrics: PollerMetrics) -> None:
    feed = BudgetFeed(fake_time, reports=False, limit=10**6)
    poller = budget_poller(feed, fake_time, metrics, PollerConfig(calls_per_hour=600))
    await run_for(poller, fake_time, 3600)
    assert len(feed.calls) <= 600
    assert feed.gaps() == pytest.approx([6.0] * (len(feed.calls) - 1))  # 3600 s / 600 calls
    assert math.isnan(poller.calls_remaining())


async def test_never_faster_than_the_live_interval(fake_time: FakeTime, metrics: PollerMetrics) -> None:
    feed = BudgetFeed(fake_time, limit=10**6)
    poller = budget_poller(feed, fake_time, metrics, PollerConfig(calls_per_hour=10**6))
    await run_for(poller, fake_time, 600)
    assert feed.gaps() == pytest.approx([2.0] * (len(feed.calls) - 1))
    assert gauge(metrics.budget_limited) == 0


async def test_retries_wait_for_the_budget_when_it_binds(fake_time: FakeTime, metrics: PollerMetrics) -> None:
    feed = BudgetFeed(fake_time, remaining=300, resets_in_s=999)
    poller = budget_poller(feed, fake_time, metrics, CFG)
    assert await poller.poll_once() == pytest.approx(1000 / 199)
    feed.fail_next = 1
    delay = await poller.poll_once()  # the backoff would retry within a second
    assert metrics.error_count("server_error") == 1
    assert delay == pytest.approx(1000 / 198)  # the failed call is counted as spent


async def test_a_regained_lead_waits_for_the_budget(fake_time: FakeTime, metrics: PollerMetrics) -> None:
    feed = BudgetFeed(fake_time, remaining=300, resets_in_s=999)
    poller = budget_poller(feed, fake_time, metrics, CFG)
    delay = await poller.poll_once()
    assert poller.not_before == pytest.approx(fake_time.now + delay)
    poller.is_leader = False  # as if the lock flapped: run() takes it again at once
    await run_for(poller, fake_time, 1)
    assert len(feed.calls) == 1  # not polled again before the budget allows


async def test_bad_values_are_counted_by_reason(fake_time: FakeTime, metrics: PollerMetrics) -> None:
    feed = BudgetFeed(fake_time)
    poller = budget_poller(feed, fake_time, metrics, CFG)
    feed.bad_values = ("null", "out_of_range", "null")
    await poller.poll_once()
    feed.bad_values = ("not_a_number",)
    await poller.poll_once()
    feed.fail_next = 1
    await poller.poll_once()  # a failed fetch counts nothing
    assert metrics.bad_value_count("null") == 2
    assert metrics.bad_value_count("out_of_range") == 1
    assert metrics.bad_value_count("not_a_number") == 1


@given(
    remaining=st.integers(0, 3000),
    resets_in=st.integers(1, 3600),
    fraction=st.floats(0, 1, exclude_max=True),
    reserve=st.integers(0, 200),
    calls=st.integers(1, 4),
    per_hour=st.integers(60, 10_000),
)
def test_the_planned_calls_until_the_reset_fit_above_the_reserve(
    remaining: int, resets_in: int, fraction: float, reserve: int, calls: int, per_hour: int
) -> None:
    """Whatever a response says, following the plan (each next response reporting what is left and
    the time to the reset in whole seconds, rounded down) spends at most remaining - reserve calls
    before the window resets."""
    reset = resets_in + fraction  # the true reset; the responses say int(reset - now)
    budget = CallBudget(per_hour, reserve)
    now, left, spent = 0.0, remaining, 0
    budget.observe(RateLimit(resets_in, left, "Fixture"), now)
    while True:
        now += budget.min_interval(now, calls)
        if now >= reset:
            break
        spent += calls
        left -= calls
        assert left >= 0
        budget.observe(RateLimit(int(reset - now), left, "Fixture"), now)
    assert spent <= max(remaining - reserve, 0)


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
        return parse_livescores(body(Match(9, [1], []), remaining=10**9))

    async def aclose(self) -> None:
        return None


async def test_exactly_one_poller_polls_and_the_other_takes_over(
    redis_client: aioredis.Redis, scripts: Scripts, keys: Keys
) -> None:
    cfg = PollerConfig(
        live_interval_s=0.02,
        idle_interval_s=0.02,
        lock_ttl_ms=300,
        renew_every_s=0.05,
        follower_retry_s=0.02,
        calls_per_hour=10**6,  # a poll every 0.02 s is within the budget
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
