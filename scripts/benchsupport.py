"""Benchmark servers: the ones FTL_BENCH_REDIS_URL / FTL_BENCH_DATABASE_URL name, else embedded."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ftl.persistence.embedded import EmbeddedPostgres, EmbeddedRedis


async def bench_servers(prefix: str) -> tuple[str, str, list[Any]]:
    """(redis_url, database_url, embedded servers started, to stop in reverse order)."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    data.chmod(0o755)
    redis_url = os.environ.get("FTL_BENCH_REDIS_URL")
    database_url = os.environ.get("FTL_BENCH_DATABASE_URL")
    servers: list[Any] = []
    if not redis_url:
        r = EmbeddedRedis(data)
        await r.start()
        servers.append(r)
        redis_url = r.url
    if not database_url:
        p = EmbeddedPostgres(data)
        await p.start()
        servers.append(p)
        database_url = p.url
    return redis_url, database_url, servers
