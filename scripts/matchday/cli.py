"""Command line: the argparse options and `main(argv)`, which runs a match day or a ws worker."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from scripts.matchday.day import MatchDay
from scripts.matchday.ws_clients import ws_worker


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="matchday", description=_usage(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--users", type=int, default=200, help="simulated users (default 200)")
    p.add_argument("--ws-clients", type=int, default=400, help="WebSocket clients (default 400)")
    p.add_argument("--duration", type=float, default=120.0, help="seconds of trading (default 120)")
    p.add_argument("--speed", type=float, default=10.0, help="replay speed, FTL_REPLAY_SPEED (default 10)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--no-faults", action="store_true", help="no fault injection")
    p.add_argument(
        "--think", type=float, default=1.0, help="mean seconds between a user's actions (default 1)"
    )
    p.add_argument("--informed", type=int, default=1, help="informed traders (default 1)")
    p.add_argument(
        "--informed-lead", type=float, default=4.0, help="seconds the informed trader sees ahead (default 4)"
    )
    p.add_argument("--ws-subs", type=int, default=5, help="subscriptions per ws client (default 5)")
    p.add_argument("--ws-procs", type=int, default=0, help="ws client processes (default: 1, or 2 above 300)")
    p.add_argument("--slow-clients", type=int, default=0, help="slow ws clients in the burst (default ws/10)")
    p.add_argument(
        "--redis-url", default=None, help="use this Redis (no Redis kill) instead of an embedded one"
    )
    p.add_argument("--database-url", default=None, help="create a fresh database on this PostgreSQL server")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    p.add_argument("--ws-worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ws_worker:
        asyncio.run(ws_worker(args.ws_worker))
        return 0
    from ftl import logs

    logs.configure("console", "warning")
    return asyncio.run(MatchDay(args).run())


def _usage() -> str | None:
    """The usage text: the docstring of the package."""
    import scripts.matchday

    return scripts.matchday.__doc__
