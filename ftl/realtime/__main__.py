"""``python -m ftl.realtime``: one ws replica (or one child worker) without the rest of ftl."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

import redis.asyncio as aioredis

from ftl import config, logs
from ftl.health import Health
from ftl.realtime.replica import Replica
from ftl.realtime.server import WsOptions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ftl.realtime",
        description="Serve the ws role on FTL_WS_PORT against FTL_REDIS_URL (no PostgreSQL needed).",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port (default 1)")
    parser.add_argument("--port", type=int, default=None, help="port (default FTL_WS_PORT)")
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    return parser


async def _serve(settings: config.Settings, workers: int, child: bool) -> int:
    assert settings.redis_url is not None
    redis = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=1.0, socket_keepalive=True, health_check_interval=10
    )
    health = Health()

    async def redis_ok() -> None:
        await redis.ping()

    health.add("redis", redis_ok)
    replica = Replica(
        settings,
        redis,
        settings.redis_url,
        health,
        workers=1 if child else workers,
        reuse_port=True if child else None,
        options=WsOptions(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await replica.start()
    runner = asyncio.create_task(replica.run())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0 if stopper in done else 1
    health.draining = True
    if code == 0 and not child:
        await asyncio.sleep(settings.drain_s)
    runner.cancel()
    await replica.stop()
    await redis.aclose()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = config.load(role="ws")
    except config.ConfigError as exc:
        print(f"ftl.realtime: {exc}", file=sys.stderr)
        return 2
    if args.port is not None:
        settings = settings.replace(ws_port=args.port)
    if settings.redis_url is None:
        print("ftl.realtime: FTL_REDIS_URL is required", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level, f"ws{args.worker}")
    return asyncio.run(_serve(settings, args.workers, args.worker > 0))


if __name__ == "__main__":
    sys.exit(main())
