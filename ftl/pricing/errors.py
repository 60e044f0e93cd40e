"""Feed errors: each kind is handled differently by the poller (and counted by kind)."""

from __future__ import annotations


class FeedError(Exception):
    """A poll that yielded no usable data; no price moves."""

    kind = "feed"


class MalformedResponse(FeedError):
    """The body is not JSON, or not the livescores shape (a partial response is malformed too)."""

    kind = "malformed"


class RateLimited(FeedError):
    """HTTP 429: wait ``resets_in_seconds`` before the next request."""

    kind = "rate_limited"

    def __init__(self, resets_in_seconds: float, message: str = "rate limited") -> None:
        super().__init__(f"{message}; resets in {resets_in_seconds}s")
        self.resets_in_seconds = resets_in_seconds


class ServerError(FeedError):
    """HTTP 5xx: retry with jittered backoff."""

    kind = "server_error"

    def __init__(self, status: int) -> None:
        super().__init__(f"server error {status}")
        self.status = status


class FeedTimeout(FeedError):
    """The request timed out or the connection failed: retry with jittered backoff."""

    kind = "timeout"


class Unauthorized(FeedError):
    """HTTP 401/403: the token is wrong or lacks the plan; retrying soon will not help."""

    kind = "unauthorized"

    def __init__(self, status: int) -> None:
        super().__init__(f"unauthorized ({status}): check FTL_SPORTMONKS_TOKEN")
        self.status = status


class ClientError(FeedError):
    """Another 4xx: our request is wrong."""

    kind = "client_error"

    def __init__(self, status: int) -> None:
        super().__init__(f"client error {status}")
        self.status = status
