"""The ``Feed`` protocol the poller reads from: the live Sportmonks client and the replay feed."""

from __future__ import annotations

from typing import Protocol

from ftl.pricing.model import LiveSnapshot


class Feed(Protocol):
    """A source of livescores snapshots. ``fetch`` raises a ``FeedError`` when it has no usable data."""

    async def fetch(self) -> LiveSnapshot: ...

    async def aclose(self) -> None: ...


def open_feed(
    spec: str,
    *,
    sportmonks_url: str,
    sportmonks_token: str | None,
    replay_speed: float = 1.0,
    replay_loop: bool = True,
) -> Feed | None:
    """The feed ``FTL_FEED`` names: ``sportmonks``, ``replay:PATH`` (``replay:bundled``) or ``off`` (None)."""
    if spec == "off":
        return None
    if spec == "sportmonks":
        if not sportmonks_token:
            raise ValueError("FTL_FEED=sportmonks needs FTL_SPORTMONKS_TOKEN")
        from ftl.pricing.sportmonks import SportmonksClient

        return SportmonksClient(sportmonks_url, sportmonks_token)
    if spec.startswith("replay:") and len(spec) > len("replay:"):
        from ftl.pricing.replay import ReplayFeed

        return ReplayFeed.from_spec(spec[len("replay:") :], speed=replay_speed, loop=replay_loop)
    raise ValueError("FTL_FEED must be sportmonks, off or replay:PATH")
