"""Finding the embedded Redis and PostgreSQL servers of a running ``ftl dev`` from its data dir."""

from __future__ import annotations

import os
from pathlib import Path


def embedded_urls(data_dir: Path) -> tuple[str, str] | None:
    """The Redis and PostgreSQL URLs of the embedded servers a running ftl keeps in ``data_dir``.

    PostgreSQL's port is in ``pgdata/postmaster.pid``; redis-server runs with its working
    directory set to ``data_dir/redis`` (Linux ``/proc``). None when either is not running.
    """
    root = data_dir.resolve()
    try:
        pg_port = int((root / "pgdata" / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None
    redis_dir = str(root / "redis")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "cwd") != redis_dir:
                continue
            words = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        if not words or not words[0].endswith("redis-server"):
            continue
        # redis-server retitles itself "redis-server 127.0.0.1:PORT"; else it still has --port
        port = words[words.index("--port") + 1] if "--port" in words[:-1] else words[-1].rpartition(":")[2]
        if port.isdigit():
            return f"redis://127.0.0.1:{port}/0", f"postgresql://postgres@127.0.0.1:{pg_port}/ftl"
    return None
