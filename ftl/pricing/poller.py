"""The price poller: one leader polls the feed (2 s live, slower idle) and hands changes to ``apply``."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ftl import logs
from ftl.persistence.leader import LeaderLock
from ftl.pricing.budget import CallBudget
from ftl.pricing.errors import FeedError, RateLimited, Unauthorized
from ftl.pricing.feed import Feed
from ftl.pricing.model import IndexChange, LiveSnapshot
from ftl.pricing.normalise import FeedState, Normaliser, PlayerState

log = logs.get(__name__)

ApplyFn = Callable[[list[IndexChange]], Awaitable[None]]
LoadStatesFn = Callable[[], Awaitable[FeedState | Mapping[int, PlayerState]]]


@dataclass(frozen=True, slots=True)
class PollerConfig:
    live_interval_s: float = 2.0  # while any fixture is live
    idle_interval_s: float = 30.0  # schedule check while nothing is live
    lock_name: str = "pricing-poller"
    lock_ttl_ms: int = 10_000
    renew_every_s: float = 2.0  # the leader renews its lock at least this often, even while waiting
    follower_retry_s: float = 3.0  # a non-leader tries to take the lock this often
    calls_per_hour: int = 2000  # the Sportmonks plan's calls per hour (FTL_SPORTMONKS_CALLS_PER_HOUR)
    reserve_calls: int = 100  # of rate_limit.remaining, left for other callers of the same token
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_rate_limit_wait_s: float = 3600.0
    unauthorized_wait_s: float = 60.0

    def __post_init__(self) -> None:
        if self.lock_ttl_ms <= self.renew_every_s * 1000:
            raise ValueError("lock_ttl_ms must exceed renew_every_s")
        if self.calls_per_hour < 1:
            raise ValueError("calls_per_hour must be at least 1")
        if self.reserve_calls < 0:
            raise ValueError("reserve_calls must not be negative")


class PollerMetrics:
    """Poll duration, errors by kind, age of the last good poll, the call plan (one set per registry)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.poll_seconds = Histogram(
            "ftl_pricing_poll_seconds",
            "Duration of one price poll (fetch, parse, normalise, apply)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.errors = Counter(
            "ftl_pricing_poll_errors", "Failed price polls by kind", ["kind"], registry=registry
        )
        self.last_good_age = Gauge(
            "ftl_pricing_last_good_poll_age_seconds",
            "Seconds since the last poll that yielded usable data",
            registry=registry,
        )
        self.changes = Counter(
            "ftl_pricing_index_changes", "Index changes handed to apply", registry=registry
        )
        self.leader = Gauge("ftl_pricing_poller_leader", "1 while this process polls", registry=registry)
        self.bad_values = Counter(
            "ftl_pricing_bad_values",
            "Player values dropped while parsing a response, by reason",
            ["reason"],
            registry=registry,
        )
        self.calls_remaining = Gauge(
            "ftl_pricing_calls_remaining",
            "Sportmonks calls left until the rate limit resets (last response, minus calls since; "
            "NaN when unknown)",
            registry=registry,
        )
        self.poll_interval = Gauge(
            "ftl_pricing_poll_interval_seconds",
            "Seconds the poller waits before its next poll",
            registry=registry,
        )
        self.budget_limited = Gauge(
            "ftl_pricing_budget_limited",
            "1 while the call budget, not the live/idle schedule, sets the poll interval",
            registry=registry,
        )

    def error_count(self, kind: str) -> float:
        return float(self.errors.labels(kind=kind)._value.get())

    def bad_value_count(self, reason: str) -> float:
        return float(self.bad_values.labels(reason=reason)._value.get())


_default_metrics: PollerMetrics | None = None


def default_metrics() -> PollerMetrics:
    global _default_metrics
    if _default_metrics is None:
        _default_metrics = PollerMetrics()
    return _default_metrics


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Poller:
    """Polls ``feed`` while it holds ``lock`` (None: always leader) and calls ``apply(changes)``.

    Schedule: ``live_interval_s`` while any fixture is live, ``idle_interval_s`` otherwise; after a
    429, ``rate_limit.resets_in_seconds``; after 5xx, timeouts and malformed responses, jittered
    exponential backoff. Every wait is at least what the call budget (:class:`CallBudget`) allows
    whenever that is slower than ``live_interval_s``: the remaining calls are spread so that they
    last until the limit resets. A failed poll moves no price. Changes ``apply`` failed on are
    retried with the next poll (newest per instrument wins).
    """

    def __init__(
        self,
        feed: Feed,
        normaliser: Normaliser,
        apply: ApplyFn,
        lock: LeaderLock | None = None,
        *,
        config: PollerConfig | None = None,
        load_states: LoadStatesFn | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = _wall_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        metrics: PollerMetrics | None = None,
    ) -> None:
        self.feed = feed
        self.normaliser = normaliser
        self.apply = apply
        self.lock = lock
        self.config = config or PollerConfig()
        self.load_states = load_states
        self.clock = clock
        self.wall_ms = wall_ms
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.metrics = metrics or default_metrics()
        self.is_leader = False
        self.live = False
        self.failures = 0  # consecutive failed polls
        self.polls = 0
        self.last_good: float | None = None
        self.last_delay: float = 0.0
        self.budget = CallBudget(self.config.calls_per_hour, self.config.reserve_calls)
        self.calls_per_poll = 1  # pages the last good poll fetched
        self.budget_limited = False  # the budget, not the schedule, set the last good poll's interval
        self.not_before: float = -math.inf  # the budget allows no call before this (clock seconds)
        self._pending: dict[int, IndexChange] = {}
        self._stopping = asyncio.Event()
        self._started = clock()
        self.metrics.last_good_age.set_function(self.last_good_age)
        self.metrics.calls_remaining.set_function(self.calls_remaining)

    def last_good_age(self) -> float:
        return self.clock() - (self.last_good if self.last_good is not None else self._started)

    def calls_remaining(self) -> float:
        left = self.budget.left(self.clock())
        return math.nan if left is None else float(left)

    # -- schedule ---------------------------------------------------------------------------------

    def backoff(self) -> float:
        """Equal-jitter exponential backoff: half fixed, half random, capped."""
        cfg = self.config
        cap: float = min(cfg.backoff_max_s, cfg.backoff_base_s * 2.0 ** max(self.failures - 1, 0))
        return cap / 2 + self.rng.uniform(0, cap / 2)

    def interval(self, snapshot: LiveSnapshot) -> float:
        """The schedule's interval (live or idle), before the budget has its say (``_pace``)."""
        cfg = self.config
        return cfg.live_interval_s if snapshot.any_live else cfg.idle_interval_s

    def _pace(self, delay: float, *, good: bool) -> float:
        """``delay`` stretched to what the call budget allows, when that is slower than the live
        interval (the budget never makes the poller faster, nor touches a backoff it does not
        exceed). A good poll's decision is exported, and logged when it changes."""
        cfg = self.config
        now = self.clock()
        floor = min(self.budget.min_interval(now, self.calls_per_poll), cfg.max_rate_limit_wait_s)
        self.not_before = now + floor
        limited = floor > cfg.live_interval_s and floor > delay
        if limited:
            delay = floor
        if good and limited != self.budget_limited:
            self.budget_limited = limited
            self.metrics.budget_limited.set(1 if limited else 0)
            if limited:
                log.warning(
                    "price polling slowed down to stay within the Sportmonks call budget",
                    interval_s=round(delay, 2),
                    remaining=self.budget.left(now),
                    resets_in_s=_rounded(self.budget.resets_in(now)),
                    reserve=cfg.reserve_calls,
                    calls_per_hour=cfg.calls_per_hour,
                )
            else:
                log.info("price polling back on its schedule", interval_s=round(delay, 2))
        return delay

    # -- one poll ---------------------------------------------------------------------------------

    async def poll_once(self) -> float:
        """Fetch, normalise, apply. Returns the seconds to wait before the next poll."""
        started = time.perf_counter()
        self.polls += 1
        try:
            snapshot = await self.feed.fetch()
        except RateLimited as exc:
            self._count(exc.kind)
            self.failures += 1
            self.budget.exhausted(exc.resets_in_seconds, self.clock())
            log.warning("sportmonks rate limited", resets_in_s=exc.resets_in_seconds)
            delay = min(exc.resets_in_seconds, self.config.max_rate_limit_wait_s)
            return self._done(started, self._pace(delay, good=False))
        except Unauthorized as exc:
            self._count(exc.kind)
            self.failures += 1
            self.budget.spend(1, self.clock())
            log.error("sportmonks refused the token", status=exc.status)
            return self._done(started, self._pace(self.config.unauthorized_wait_s, good=False))
        except FeedError as exc:
            self._count(exc.kind)
            self.failures += 1
            self.budget.spend(1, self.clock())  # a failed call may count: assume it does
            delay = self._pace(self.backoff(), good=False)
            log.warning("price poll failed", kind=exc.kind, error=str(exc), retry_in_s=round(delay, 2))
            return self._done(started, delay)
        self.failures = 0
        self.last_good = self.clock()
        self.live = snapshot.any_live
        self.calls_per_poll = snapshot.pagination.current_page if snapshot.pagination is not None else 1
        if snapshot.rate_limit is not None:
            self.budget.observe(snapshot.rate_limit, self.last_good)
        else:
            self.budget.spend(self.calls_per_poll, self.last_good)
        for reason in snapshot.bad_values:
            self.metrics.bad_values.labels(reason=reason).inc()
        changes = self.normaliser.step(snapshot, self.wall_ms())
        if self.normaliser.unknown_players:
            self.metrics.errors.labels(kind="unknown_player").inc(self.normaliser.unknown_players)
        await self._apply(changes)
        return self._done(started, self._pace(self.interval(snapshot), good=True))

    async def _apply(self, changes: list[IndexChange]) -> None:
        if self._pending:
            merged = dict(self._pending)
            merged.update((c.instrument_id, c) for c in changes)
            changes = sorted(merged.values(), key=lambda c: c.instrument_id)
            self._pending = {}
        try:  # also with no changes: the sink stores the normaliser's state, which every poll moves
            await self.apply(changes)
        except Exception as exc:  # the sink is down: keep the changes for the next poll
            self._count("apply")
            self._pending = {c.instrument_id: c for c in changes}
            log.warning("applying index changes failed", error=repr(exc), pending=len(changes))
            return
        self.metrics.changes.inc(len(changes))

    def _count(self, kind: str) -> None:
        self.metrics.errors.labels(kind=kind).inc()

    def _done(self, started: float, delay: float) -> float:
        self.metrics.poll_seconds.observe(time.perf_counter() - started)
        self.metrics.poll_interval.set(delay)
        self.last_delay = delay
        return delay

    # -- leadership and the loop ------------------------------------------------------------------

    async def hold_lock(self) -> bool:
        """Take or renew the leader lock; on a change of leadership reload the player states."""
        if self.lock is None:
            leader = True
        else:
            try:
                leader = await self.lock.acquire()
            except Exception as exc:  # Redis unreachable: we cannot know, so we do not poll
                self._count("lock")
                log.warning("leader lock unavailable", error=repr(exc))
                leader = False
        if leader and not self.is_leader:
            log.info("price poller is the leader")
            if self.load_states is not None:
                states = await self.load_states()
                self.normaliser = Normaliser.resume(states, self.normaliser.cfg)
                self._pending = {}
        elif not leader and self.is_leader:
            log.info("price poller lost the leader lock")
        self.is_leader = leader
        self.metrics.leader.set(1 if leader else 0)
        return leader

    async def run(self) -> None:
        """Poll until ``stop()``; releases the lock on the way out."""
        cfg = self.config
        next_poll = self.clock()
        try:
            while not self._stopping.is_set():
                was_leader = self.is_leader
                if not await self.hold_lock():
                    await self._pause(cfg.follower_retry_s)
                    continue
                if not was_leader:  # poll now, unless this process polled too recently for the budget
                    next_poll = max(self.clock(), self.not_before)
                if self.clock() >= next_poll:
                    next_poll = self.clock() + await self.poll_once()
                await self._pause(min(max(next_poll - self.clock(), 0.0), cfg.renew_every_s))
        finally:
            await self._release()

    async def _pause(self, seconds: float) -> None:
        if not self._stopping.is_set():
            await self.sleep(seconds)

    async def _release(self) -> None:
        if self.lock is not None and self.is_leader:
            try:
                await self.lock.release()
            except Exception as exc:
                log.warning("releasing the leader lock failed", error=repr(exc))
        self.is_leader = False
        self.metrics.leader.set(0)

    def stop(self) -> None:
        self._stopping.set()
