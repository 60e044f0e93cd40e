"""Whole ftl processes with real embedded servers: start, readiness, Redis loss, SIGINT, locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.helpers import ftl_process, http_status, make_data_dir, wait_for

pytestmark = pytest.mark.slow


def _servers(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if c.name() in ("redis-server", "postgres")]


def test_dev_ready_then_redis_loss_then_sigint_leaves_nothing_behind() -> None:
    with ftl_process(["dev"]) as ftl:
        wait_for(lambda: http_status(ftl.url("api", "/readyz")) == 200, 30, "api ready")
        wait_for(lambda: http_status(ftl.url("ws", "/readyz")) == 200, 5, "ws ready")
        assert http_status(ftl.url("flusher", "/readyz")) == 200
        assert http_status(ftl.url("api", "/healthz")) == 200
        assert http_status(ftl.url("flusher", "/metrics")) == 200
        servers = _servers(ftl.proc.pid)
        assert {s.name() for s in servers} == {"redis-server", "postgres"}

        redis = next(s for s in servers if s.name() == "redis-server")
        redis.kill()  # kill -9 the embedded redis-server
        # readiness turns 503 (within 5 s) until ftl has restarted it, then 200 again
        wait_for(
            lambda: (
                http_status(ftl.url("api", "/readyz")) == 503
                or any(s.name() == "redis-server" and s.pid != redis.pid for s in _servers(ftl.proc.pid))
            ),
            5,
            "503 or restart",
        )
        wait_for(lambda: http_status(ftl.url("api", "/readyz")) == 200, 10, "ready again")
        new = [s for s in _servers(ftl.proc.pid) if s.name() == "redis-server"]
        assert new and new[0].pid != redis.pid
        assert "embedded server exited, restarting" in ftl.log()

        everything = _servers(ftl.proc.pid)
        ftl.signal(signal.SIGINT)
        took = wait_for(lambda: ftl.proc.poll() is not None, 5, "ftl to exit on SIGINT")
        assert ftl.proc.returncode == 0, ftl.log()
        assert took < 5
        wait_for(
            lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in everything),
            5,
            "servers gone",
        )


def test_second_dev_on_same_data_dir_fails_clearly() -> None:
    data_dir = make_data_dir()
    with ftl_process(["dev"], data_dir=data_dir) as first:
        wait_for(lambda: http_status(first.url("api", "/readyz")) == 200, 30, "first ready")
        with ftl_process(["dev"], data_dir=data_dir) as second:
            wait_for(lambda: second.proc.poll() is not None, 15, "second to give up")
            assert second.proc.returncode == 2
            assert "already running embedded servers" in second.log()
        assert http_status(first.url("api", "/readyz")) == 200
        first.signal(signal.SIGTERM)
        wait_for(lambda: first.proc.poll() is not None, 5, "first to exit on SIGTERM")


def test_readyz_503_while_draining() -> None:
    with ftl_process(["dev"], env={"FTL_DRAIN_S": "3"}) as ftl:
        wait_for(lambda: http_status(ftl.url("api", "/readyz")) == 200, 30, "ready")
        ftl.signal(signal.SIGTERM)
        wait_for(lambda: http_status(ftl.url("api", "/readyz")) == 503, 2, "503 while draining")
        assert http_status(ftl.url("api", "/healthz")) == 200  # still alive while draining
        wait_for(lambda: ftl.proc.poll() is not None, 8, "exit after drain")


def test_run_refuses_pending_migrations(redis_url: str, pg_server_url: str) -> None:
    import secrets

    import psycopg

    name = f"ftl_pending_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{pg_server_url.rpartition('/')[0]}/{name}"
        env = {"FTL_REDIS_URL": redis_url, "FTL_DATABASE_URL": url}
        with ftl_process(["run", "--role=flusher"], env=env) as ftl:
            wait_for(lambda: ftl.proc.poll() is not None, 20, "refusal")
            assert ftl.proc.returncode == 2
            assert "run `ftl migrate`" in ftl.log()
        with ftl_process(["migrate"], env=env) as mig:
            wait_for(lambda: mig.proc.poll() is not None, 20, "migrate")
            assert mig.proc.returncode == 0 and "0002_instrument_pseq" in mig.log()
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_FLUSHER_PROBE = r"""
import asyncio, os, signal, sys, urllib.request
from ftl import config
from ftl.runtime.context import Runtime
from ftl.runtime.supervisor import supervise

async def main():
    settings = config.load()
    rt = Runtime(settings)
    task = asyncio.create_task(supervise(rt, "flusher"))
    url = f"http://127.0.0.1:{settings.flusher_port}/readyz"
    for _ in range(400):
        await asyncio.sleep(0.05)
        try:
            resp = await asyncio.to_thread(urllib.request.urlopen, url, timeout=1)
            if resp.status == 200:
                break
        except Exception:
            pass
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("starlette", "hypercorn"))
    print("WEB_MODULES=" + ",".join(loaded), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    print("EXIT=" + str(await task), flush=True)

asyncio.run(main())
"""


def test_flusher_role_never_imports_the_web_stack(redis_url: str, database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    env.update(
        {
            "FTL_REDIS_URL": redis_url,
            "FTL_DATABASE_URL": database_url,
            "FTL_FLUSHER_PORT": str(
                __import__("ftl.persistence.processes").persistence.processes.free_port()
            ),
            "FTL_DRAIN_S": "0",
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", _FLUSHER_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "WEB_MODULES=\n" in out.stdout, out.stdout + out.stderr
    assert "EXIT=0" in out.stdout, out.stdout + out.stderr
