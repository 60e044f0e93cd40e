"""Child server processes: start, watch, restart on unexpected exit, stop; never outlive ftl."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from ftl import logs

log = logs.get(__name__)

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _child_setup(uid: int | None, gid: int | None) -> Callable[[], None]:
    def setup() -> None:
        os.setsid()
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        # After the uid change (which clears it): die with the parent, even on kill -9.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return setup


class ChildServer:
    """One supervised server process (redis-server or postgres)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        stop_signal: int = signal.SIGTERM,
        uid: int | None = None,
        gid: int | None = None,
        ready: Callable[[], Awaitable[bool]],
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.uid = uid
        self.gid = gid
        self._ready = ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def spawn(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup(self.uid, self.gid),
                close_fds=True,
            )
        log.info("embedded server started", server=self.name, pid=self.proc.pid)

    async def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"embedded {self.name} exited with code {self.proc.returncode}; "
                    f"see {self.log_path}:\n{self._log_tail()}"
                )
            if await self._ready():
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"embedded {self.name} not ready after {timeout}s; see {self.log_path}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def watch(self) -> None:
        """Restart the server whenever it exits while ftl still wants it."""
        while not self._stopping:
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping:
                log.warning(
                    "embedded server exited, restarting",
                    server=self.name,
                    code=proc.returncode,
                )
                self.restarts += 1
                try:
                    await self.start()
                except (RuntimeError, TimeoutError) as exc:
                    log.error("embedded server restart failed", server=self.name, error=str(exc))
                    await asyncio.sleep(1.0)
                    continue
            await asyncio.sleep(0.1)

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping = True
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded server did not stop in time, killing", server=self.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        log.info("embedded server stopped", server=self.name, code=proc.returncode)
