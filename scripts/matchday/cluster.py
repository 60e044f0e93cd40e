"""Starting and stopping the servers (Redis, PostgreSQL, fake Google) and the `ftl` role processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from ftl.persistence.embedded import EmbeddedPostgres, EmbeddedRedis
from ftl.persistence.keys import Keys
from ftl.persistence.processes import _child_setup, free_port
from scripts.matchday.state import MatchDayState
from tests.auth.fake_google import CLIENT_ID, FakeGoogle

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout: cwd of every child process
KID = "matchday-1"


class Role:
    """One `ftl` process (api, ws, flusher, or a one-shot command)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as out:
            out.write(f"\n---- start #{self.starts} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ftl", *self.args],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup(None, None),  # own process group; dies with us
            )

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reap_group()

    def _reap_group(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # leftover workers of this process only

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._reap_group()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reap_group()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def http_get_status(port: int, path: str) -> int:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            s.settimeout(3)
            head = s.recv(64)
            return int(head[9:12]) if head.startswith(b"HTTP/1.") else 0
    except (OSError, ValueError):
        return 0


async def wait_ready(port: int, role: Role, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not role.alive():
            raise RuntimeError(f"{role.name} exited ({role.proc and role.proc.returncode}):\n{role.tail()}")
        if await asyncio.to_thread(http_get_status, port, "/readyz") == 200:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{role.name} not ready after {timeout}s:\n{role.tail()}")


def run_once(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftl", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ClusterMixin(MatchDayState):
    """The servers and role processes of the day (`MatchDay.start_servers`, `MatchDay.shutdown`)."""

    async def start_servers(self) -> None:
        a = self.args
        if a.redis_url:
            self.redis_url = a.redis_url
            self.keys = Keys(f"md{secrets.token_hex(3)}:")
        else:
            self.redis = EmbeddedRedis(self.work)
            await self.redis.start()
            self.redis_url = self.redis.url
        if a.database_url:
            name = f"ftl_matchday_{secrets.token_hex(4)}"
            with psycopg.connect(a.database_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.database_url = f"{a.database_url.rpartition('/')[0]}/{name}"
            self.dropdb = (a.database_url, name)
        else:
            self.pg = EmbeddedPostgres(self.work)
            await self.pg.start()
            self.database_url = self.pg.url
        self.google = FakeGoogle().start()
        self.google.publish(KID)
        self.ports = {
            "api0": free_port(),
            "api1": free_port(),
            "ws": free_port(),
            "flusher": free_port(),
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
        base.update(
            {
                "FTL_ENV": "production",
                "FTL_REDIS_URL": self.redis_url,
                "FTL_DATABASE_URL": self.database_url,
                "FTL_REDIS_PREFIX": self.keys.prefix,
                "FTL_DATA_DIR": str(self.work / "ftl"),
                "FTL_HOST": "127.0.0.1",
                "FTL_JWT_KEYS": f"md1:{secrets.token_urlsafe(40)}",
                "FTL_GOOGLE_CLIENT_ID": CLIENT_ID,
                "FTL_GOOGLE_JWKS_URL": self.google.url,
                "FTL_FEED": "replay:bundled",
                "FTL_REPLAY_SPEED": str(a.speed),
                "FTL_SEED_DEMO": "0",
                "FTL_WS_WORKERS": "2",
                "FTL_DRAIN_S": "0.5",
                "FTL_LOG_LEVEL": "info",
                "FTL_ACCESS_TTL_S": str(int(max(900, a.duration * 3 + 600))),
                "FTL_API_PORT": str(self.ports["api0"]),
                "FTL_WS_PORT": str(self.ports["ws"]),
                "FTL_FLUSHER_PORT": str(self.ports["flusher"]),
            }
        )
        self.env = base
        for cmd in (["migrate"], ["seed"]):
            out = run_once(cmd, base)
            if out.returncode != 0:
                raise RuntimeError(f"ftl {cmd[0]} failed:\n{out.stdout}\n{out.stderr}")
            self.event(f"ftl {cmd[0]}: {out.stdout.strip().splitlines()[-1]}")
        self.flusher = Role("flusher", ["run", "--role=flusher"], base, self.logs)
        self.apis = [
            Role("api0", ["run", "--role=api"], {**base, "FTL_API_PORT": str(self.ports["api0"])}, self.logs),
            Role("api1", ["run", "--role=api"], {**base, "FTL_API_PORT": str(self.ports["api1"])}, self.logs),
        ]
        self.ws = Role("ws", ["run", "--role=ws"], base, self.logs)
        self.flusher.start()
        await wait_ready(self.ports["flusher"], self.flusher, 90)
        for role in (*self.apis, self.ws):
            role.start()
        await wait_ready(self.ports["api0"], self.apis[0], 90)
        await wait_ready(self.ports["api1"], self.apis[1], 90)
        await wait_ready(self.ports["ws"], self.ws, 90)
        self.event("api x2, ws x1 (2 workers), flusher x1 ready")

    async def shutdown(self) -> None:
        for role in (*getattr(self, "apis", []), getattr(self, "ws", None), getattr(self, "flusher", None)):
            if role is not None:
                await asyncio.to_thread(role.stop)
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
        if getattr(self, "dropdb", None):
            url, name = self.dropdb
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if getattr(self, "google", None) is not None:
            self.google.stop()
