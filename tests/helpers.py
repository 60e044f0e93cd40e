"""Test helpers: poll with a deadline (never sleep to wait for state), run ftl processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ftl.persistence.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
# The environment of an ftl process whose api dies between a trade's Lua call and its write
# (tests/hooks/sitecustomize.py: the product itself has no such hook).
FAULT_HOOKS = {"FTL_TEST_FAULT_AFTER_LUA": "1", "PYTHONPATH": str(ROOT / "tests" / "hooks")}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; return the seconds it took; fail after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def await_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def make_data_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="ftl-proc-"))
    path.chmod(0o755)
    return path


@dataclass
class FtlProcess:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    log_path: Path

    def url(self, role: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[role]}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGINT) -> None:
        self.proc.send_signal(sig)


@contextmanager
def ftl_process(
    args: list[str], env: dict[str, str] | None = None, data_dir: Path | None = None
) -> Iterator[FtlProcess]:
    """Run ``python -m ftl ARGS`` with free ports and its own data dir; kill it afterwards."""
    data_dir = data_dir or make_data_dir()
    ports = {"api": free_port(), "ws": free_port(), "flusher": free_port()}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    full_env.update(
        {
            "FTL_DATA_DIR": str(data_dir),
            "FTL_API_PORT": str(ports["api"]),
            "FTL_WS_PORT": str(ports["ws"]),
            "FTL_FLUSHER_PORT": str(ports["flusher"]),
            "FTL_DRAIN_S": "0.5",
            "FTL_FEED": "off",
        }
    )
    full_env.update(env or {})
    log_path = data_dir / f"ftl-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftl", *args], env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    handle = FtlProcess(proc, ports, log_path)
    try:
        yield handle
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    return f"{url.rpartition('/')[0]}/{name}"
