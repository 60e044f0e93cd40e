"""The poller's call budget (pure): how long to wait so that the Sportmonks calls left last until
the hourly window resets (docs/pricing.md, "The call budget")."""

from __future__ import annotations

from ftl.pricing.model import RateLimit

RESET_SLACK_S = 1.0
"""``resets_in_seconds`` comes in whole seconds: the window is taken to end this much later, so a
rounded-down value never makes the poller plan a call into the old window that it does not have."""


class CallBudget:
    """The calls the poller may still make, and the pace that makes them last until the reset.

    ``observe`` records what a response said (``rate_limit.remaining`` after it, the seconds until
    the hourly window resets); ``spend`` counts calls made since without such an answer (failed
    polls); ``exhausted`` records a 429. ``min_interval`` is the shortest wait before the next poll:

    * at least ``3600 * calls / calls_per_hour`` (the plan's steady pace; the only rule while the
      remaining calls are unknown: no response yet, a feed without ``rate_limit``, or the window
      the last response spoke of has reset);
    * with the remaining calls known, at least ``resets_in / (remaining - reserve)`` per call, so
      the calls left above the reserve last until the reset; when no call is left above the
      reserve, the time until the reset.
    """

    def __init__(self, calls_per_hour: int, reserve: int) -> None:
        self.calls_per_hour = calls_per_hour
        self.reserve = reserve
        self.remaining: int | None = None
        self.resets_at: float | None = None  # clock seconds at which the window resets

    def observe(self, rate_limit: RateLimit, now: float) -> None:
        self.remaining = max(rate_limit.remaining, 0)
        self.resets_at = now + max(rate_limit.resets_in_seconds, 0) + RESET_SLACK_S

    def exhausted(self, resets_in_s: float, now: float) -> None:
        self.remaining = 0
        self.resets_at = now + max(resets_in_s, 0.0)

    def spend(self, calls: int, now: float) -> None:
        if self.remaining is not None and self.known(now):
            self.remaining = max(self.remaining - calls, 0)

    def known(self, now: float) -> bool:
        return self.remaining is not None and self.resets_at is not None and now < self.resets_at

    def left(self, now: float) -> int | None:
        """The remaining calls as last reported (minus calls spent since), None when unknown."""
        return self.remaining if self.known(now) else None

    def resets_in(self, now: float) -> float | None:
        return self.resets_at - now if self.resets_at is not None and self.known(now) else None

    def min_interval(self, now: float, calls: int = 1) -> float:
        """Seconds to wait before a poll that makes ``calls`` calls (pages)."""
        calls = max(calls, 1)
        steady = 3600.0 * calls / self.calls_per_hour
        if self.remaining is None or self.resets_at is None or now >= self.resets_at:
            return steady
        resets_in = self.resets_at - now
        usable = self.remaining - self.reserve
        if usable < calls:
            return resets_in
        return max(steady, resets_in * calls / usable)
