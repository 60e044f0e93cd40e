"""What the benchmarks share: their servers, child processes, CPU probes and the flusher's lag.

Servers (``bench_servers``): Redis is FTL_BENCH_REDIS_URL, else an embedded redis-server.
PostgreSQL is, by ``postgres``:

- ``"durable"`` (production settings, the default of the trade, flusher and recovery benchmarks):
  FTL_BENCH_DATABASE_URL as given, else a fresh database ``ftl_bench_<hex>`` on the machine's own
  server (DURABLE_ADMIN_URL, fsync and synchronous_commit on), dropped again by ``close``;
- ``"fsync-off"``: an embedded PostgreSQL (ftl.persistence.embedded: fsync=off,
  full_page_writes=off), the dev and test default, for comparison.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis.asyncio as aioredis

from ftl.persistence.embedded import EmbeddedPostgres, EmbeddedRedis
from ftl.persistence.stores import Stores

PostgresKind = Literal["durable", "fsync-off"]
POSTGRES_KINDS: tuple[PostgresKind, ...] = ("durable", "fsync-off")
DURABLE_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class FreshDatabase:
    """A database of its own on a running server, created by ``start`` and dropped by ``stop``."""

    admin_url: str
    name: str = field(default_factory=lambda: f"ftl_bench_{secrets.token_hex(4)}")
    _asked: bool = field(default=False, repr=False)  # CREATE DATABASE was sent

    @property
    def url(self) -> str:
        return _with_database(self.admin_url, self.name)

    async def start(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise RuntimeError(
                f"no durable PostgreSQL at {self.admin_url} ({exc}); start it, set "
                "FTL_BENCH_DATABASE_URL, or compare with the fsync-off target only"
            ) from exc
        async with conn:
            self._asked = True
            await conn.execute(f'CREATE DATABASE "{self.name}"')

    def stop(self) -> None:
        if not self._asked:
            return
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class BenchServers:
    """The servers of one benchmark target; ``close`` stops and removes what was started here."""

    postgres: PostgresKind
    redis_url: str
    database_url: str
    redis_prefix: str = ""
    started: list[Any] = field(default_factory=list)  # each has stop(); stopped in reverse
    data_dir: Path | None = None
    given_redis: bool = False  # FTL_BENCH_REDIS_URL: shared, so only our prefix is deleted

    @property
    def database_label(self) -> str:
        for s in self.started:
            if isinstance(s, FreshDatabase):
                return f"fresh database {s.name} on {s.admin_url.rsplit('/', 1)[0]}"
            if isinstance(s, EmbeddedPostgres):
                return f"embedded PostgreSQL on port {s.port}"
        return "FTL_BENCH_DATABASE_URL"

    async def close(self) -> None:
        """Best effort: a step that fails is reported on stderr and the others still run."""
        try:
            if self.given_redis and self.redis_prefix:  # leave a shared Redis as it was
                await forget_prefix(self.redis_url, self.redis_prefix)
        except (aioredis.RedisError, OSError) as exc:
            print(f"cleanup: keys {self.redis_prefix}* not deleted: {exc!r}", file=sys.stderr)
        finally:
            for s in reversed(self.started):
                try:
                    s.stop()
                except Exception as exc:  # go on with the others
                    print(f"cleanup: stopping {s!r} failed: {exc!r}", file=sys.stderr)
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)


async def bench_servers(
    tmp_prefix: str, postgres: PostgresKind = "durable", redis_prefix: str = ""
) -> BenchServers:
    """Start (or name) the Redis and PostgreSQL of one target; see the module docstring."""
    data = Path(tempfile.mkdtemp(prefix=tmp_prefix))
    data.chmod(0o755)
    started: list[Any] = []
    out = BenchServers(postgres, "", "", redis_prefix, started, data)
    try:
        given_redis = os.environ.get("FTL_BENCH_REDIS_URL")
        if given_redis:
            out.redis_url, out.given_redis = given_redis, True
        else:
            r = EmbeddedRedis(data)
            started.append(r)  # before start: a start cut short is stopped too
            await r.start()
            out.redis_url = r.url
        given_pg = os.environ.get("FTL_BENCH_DATABASE_URL")
        if postgres == "durable" and given_pg:
            out.database_url = given_pg
        elif postgres == "durable":
            db = FreshDatabase(DURABLE_ADMIN_URL)
            started.append(db)
            await db.start()
            out.database_url = db.url
        else:
            p = EmbeddedPostgres(data)
            started.append(p)
            await p.start()
            out.database_url = p.url
    except BaseException:
        await out.close()
        raise
    return out


async def forget_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key under ``prefix``; how many."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        stale = [k async for k in client.scan_iter(match=f"{prefix}*", count=5000)]
        for i in range(0, len(stale), 5000):
            await client.delete(*stale[i : i + 5000])
        return len(stale)
    finally:
        await client.aclose()


async def pg_settings(
    database_url: str, names: Sequence[str] = ("fsync", "synchronous_commit")
) -> dict[str, str]:
    """``SHOW name`` for each name."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        out = {}
        for name in names:
            cur = await conn.execute(f"SHOW {name}")
            row = await cur.fetchone()
            out[name] = str(row[0]) if row else "?"
        return out


def is_durable(settings: Mapping[str, str]) -> bool:
    return settings.get("fsync") == "on" and settings.get("synchronous_commit") in ("on", "remote_apply")


# --- child processes ------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    os.setsid()  # our own signals only: a ^C in the terminal reaches the benchmark, which stops us
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Child:
    """A process the benchmark started (an ftl role, the baseline, py-spy); output to a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @classmethod
    def start(cls, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_dir: Path) -> Child:
        log_path = log_dir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # no leftover process if the benchmark is killed
        )
        return cls(name, proc, log_path, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_http(self, url: str, timeout: float = 60) -> None:
        """Until ``url`` answers 200; fails early (with the log's tail) if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: {url} did not answer within {timeout:.0f} s:\n{self.tail()}")

    def stop(self, timeout: float = 10, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def _lines(self) -> list[str]:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace").splitlines()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self._lines()[-lines:])

    def summary(self) -> str | None:
        """None for an empty log, else its size and its last line (an error's last line)."""
        text = self._lines()
        if not text:
            return None
        tracebacks = sum(1 for line in text if line.startswith("Traceback"))
        return f"{len(text)} log lines, {tracebacks} tracebacks, last: {text[-1][:200]}"


# --- CPU ------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")
Probe = Callable[[], Awaitable[float | None]]


def _own_cpu_s(pid: int) -> float:
    """utime + stime + cutime + cstime: the process and its children it reaped."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from 3 on (the name may hold spaces)
    return sum(int(x) for x in fields[11:15]) / _TICK


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                for line in f:
                    if line.startswith("PPid:"):
                        out[int(entry.name)] = int(line.split()[1])
                        break
        except OSError:  # gone meanwhile
            continue
    return out


def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and all its descendants, including those that exited and were
    reaped (their time moves into the parent's cutime/cstime, so deltas stay right)."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += _own_cpu_s(pid)
        except (OSError, ValueError):
            continue
        todo.extend(children.get(pid, ()))
    return total


def process_probe(pid: int) -> Probe:
    async def probe() -> float | None:
        try:
            return tree_cpu_s(pid) if os.path.exists(f"/proc/{pid}") else None
        except OSError:
            return None

    return probe


async def postmaster_pid(database_url: str) -> int | None:
    """The postmaster's pid: the first line of postmaster.pid in ``SHOW data_directory``; None
    if that file is not readable here (a remote server, or not a superuser)."""
    try:
        data_dir = (await pg_settings(database_url, ("data_directory",)))["data_directory"]
        pid = int(Path(data_dir, "postmaster.pid").read_text().split("\n", 1)[0])
    except (psycopg.Error, OSError, ValueError):
        return None
    return pid if os.path.exists(f"/proc/{pid}") else None


async def other_databases_xacts(database_url: str) -> int | None:
    """Transactions so far in the server's other databases: their delta over a phase says whether
    someone else's load shared the server (and its CPU figure) meanwhile."""
    try:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT coalesce(sum(xact_commit + xact_rollback), 0) FROM pg_stat_database "
                "WHERE datname IS DISTINCT FROM current_database()"
            )
            row = await cur.fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


def redis_probe(redis_url: str) -> Probe:
    """used_cpu_sys + used_cpu_user of INFO cpu: the redis-server process, wherever it runs."""

    async def probe() -> float | None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            info = await client.info("cpu")
            return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        except (aioredis.RedisError, OSError, KeyError):
            return None
        finally:
            await client.aclose()

    return probe


def self_probe() -> Probe:
    async def probe() -> float | None:
        return time.process_time()

    return probe


async def cpu_snapshot(probes: Mapping[str, Probe]) -> dict[str, float | None]:
    return {name: await p() for name, p in probes.items()}


def cpu_delta(
    before: Mapping[str, float | None], after: Mapping[str, float | None]
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, b in before.items():
        a = after.get(name)
        out[name] = None if a is None or b is None else max(0.0, a - b)
    return out


# --- flusher lag ----------------------------------------------------------------------------

AgeProbe = Callable[[Stores], Awaitable[float]]


async def oldest_outbox_age_s(stores: Stores) -> float:
    """Age of the oldest entry of the Redis trade outbox (its id's ms part against now); 0 if empty."""
    first = await stores.redis.xrange(stores.keys.outbox, count=1)
    if not first:
        return 0.0
    eid = first[0][0]
    ms = int((eid.decode() if isinstance(eid, bytes) else str(eid)).split("-")[0])
    return max(0.0, time.time() - ms / 1000)


def _unsettled_age_fn() -> tuple[AgeProbe, str]:
    try:
        from ftl.worker import flusher
    except ImportError as exc:
        return oldest_outbox_age_s, f"oldest outbox entry (ftl.worker.flusher: {exc})"
    fn: AgeProbe | None = getattr(flusher, "unsettled_age_s", None)
    if fn is None:
        return oldest_outbox_age_s, "oldest outbox entry (no flusher.unsettled_age_s yet)"
    return fn, "flusher.unsettled_age_s"


class UnsettledAge:
    """The flusher's lag: ``ftl.worker.flusher.unsettled_age_s`` (the age of the oldest trade
    whose aggregates are not folded or whose outbox entry is not settled) where it exists, else,
    or once it fails, the age of the oldest outbox entry. ``source`` says which."""

    def __init__(self) -> None:
        self.fn, self.source = _unsettled_age_fn()

    async def __call__(self, stores: Stores) -> float:
        try:
            return await self.fn(stores)
        except Exception as exc:  # the ledger rewrite's figure may fail meanwhile: fall back
            if self.fn is oldest_outbox_age_s:
                raise
            self.fn = oldest_outbox_age_s
            self.source = f"oldest outbox entry (unsettled_age_s failed: {exc!r:.120})"
            return await self.fn(stores)


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]
