"""A ws replica: worker 0 in this process plus N-1 child workers on the same port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys

import redis.asyncio as aioredis

from ftl import logs
from ftl.config import Settings
from ftl.health import Health
from ftl.persistence.keys import Keys
from ftl.realtime.server import Verify, WsOptions, WsServer

log = logs.get(__name__)


def token_verifier(settings: Settings) -> Verify:
    """The auth issue's access-token check, with the same keys as the api role."""
    from ftl.auth.keyring import load_keyring
    from ftl.auth.tokens import Tokens

    tokens = Tokens(load_keyring(settings), settings.access_ttl_s, settings.refresh_ttl_s)
    return tokens.verify_access


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one (each socket is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Replica:
    """Serves the ws role on one port with ``workers`` processes, each with its own subscription."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        redis_url: str,
        health: Health,
        *,
        workers: int = 1,
        port: int | None = None,
        verify: Verify | None = None,
        options: WsOptions | None = None,
        reuse_port: bool | None = None,
    ) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.workers = max(1, workers)
        raise_fd_limit()
        self.server = WsServer(
            redis,
            Keys(settings.redis_prefix),
            verify or token_verifier(settings),
            health,
            settings.host,
            settings.ws_port if port is None else port,
            reuse_port=self.workers > 1 if reuse_port is None else reuse_port,
            options=options,
        )
        self.children: list[asyncio.subprocess.Process] = []

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()
        env = dict(os.environ)
        env["FTL_REDIS_URL"] = self.redis_url
        env["FTL_ROLE"] = "ws"
        env["FTL_HOST"] = self.settings.host
        env["FTL_WS_PORT"] = str(self.port)
        env["FTL_DATA_DIR"] = str(self.settings.data_dir)
        env["FTL_REDIS_PREFIX"] = self.settings.redis_prefix
        for index in range(1, self.workers):
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ftl.realtime", "--worker", str(index), env=env
            )
            self.children.append(child)
        if self.children:
            log.info("ws replica started", port=self.port, workers=self.workers)

    async def run(self) -> None:
        waits: list[asyncio.Task[object]] = [asyncio.create_task(self.server.run())]
        waits += [asyncio.create_task(child.wait()) for child in self.children]
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        if waits[0] not in done:
            raise RuntimeError("a ws worker process exited")

    async def stop(self) -> None:
        for child in self.children:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
        await self.server.stop()
        for child in self.children:
            try:
                await asyncio.wait_for(child.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
