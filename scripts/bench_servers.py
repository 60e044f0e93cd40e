"""The api's HTTP server chosen by measurement: hypercorn, uvicorn (httptools) and granian, each on
the reference route and on the real trade route, driven by wrk (Debian's package) in one run.

    .venv/bin/python -m scripts.bench_servers [--seconds 10] [--connections 64] [--users 2000]
        [--servers hypercorn,uvicorn,granian]

- **reference**: a starlette handler that decodes the trade body into its declared type
  (``ftl.web.decode``) and answers a small JSON reply, no I/O (``scripts/bench_reference.py``).
- **trade**: ``ftl run --role=api`` with ``FTL_API_SERVER=<server>`` on a durable PostgreSQL (the
  machine's own, a fresh database; fsync and synchronous_commit printed) and an embedded Redis,
  ``ftl run --role=flusher`` beside it; wrk POSTs ``/api/positions/open`` for random users (a
  Lua script with their tokens and a fresh Idempotency-Key per request).

Per run: requests/s (2xx only for the trade route), p50/p99 latency (wrk --latency), the server
process's CPU µs per request (from /proc), and the trade route's share of the fastest reference.
One api process of one worker; load generator, Redis and PostgreSQL share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ftl.persistence.processes import free_port
from scripts.bench_auth import JWT_KEYS
from scripts.bench_trade import ROOT, _prepare
from scripts.benchsupport import Child, bench_servers, pg_settings, process_probe

BODY = '{"instrument_id":%d,"side":"%s","qty":1,"leverage":2,"acceptable_price":%d}'


@dataclass
class Run:
    server: str
    route: str
    rps: float
    ok_rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float


def _lua(tokens: dict[int, str], instruments: list[int], path: Path) -> None:
    toks = ",".join(json.dumps(t) for t in tokens.values())
    ids = ",".join(str(i) for i in instruments)
    path.write_text(
        f"""
local tokens = {{{toks}}}
local instruments = {{{ids}}}
local counter = 0
local prefix = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local token = tokens[math.random(#tokens)]
  local iid = instruments[math.random(#instruments)]
  local long = math.random() < 0.5
  local body = string.format('{BODY}', iid, long and "long" or "short", long and 1000000000 or 1)
  local headers = {{}}
  headers["Authorization"] = "Bearer " .. token
  headers["Idempotency-Key"] = prefix .. "-" .. counter
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", "/api/positions/open", headers, body)
end
"""
    )


def _reference_lua(path: Path) -> None:
    body = BODY % (7, "long", 1000000000)
    path.write_text(
        f"""
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
    )


def _wrk(
    port: int, path: str, script: Path, seconds: float, connections: int
) -> tuple[float, float, float, float]:
    """(requests/s, non-2xx/3xx per s, p50 ms, p99 ms) from one wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad_rps = (float(bad.group(1)) / total * rps) if bad else 0.0

    def pct(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return rps, bad_rps, pct("50"), pct("99")


def _measure(
    name: str, route: str, pid: int, port: int, path: str, script: Path, args: argparse.Namespace
) -> Run:
    probe = process_probe(pid)
    _wrk(port, path, script, 2, args.connections)  # warm-up
    cpu0 = asyncio.run(probe())
    rps, bad, p50, p99 = _wrk(port, path, script, args.seconds, args.connections)
    cpu1 = asyncio.run(probe())
    ok = rps - bad
    cpu_us = (cpu1 - cpu0) / max(ok * args.seconds, 1) * 1e6
    return Run(name, route, rps, ok, p50, p99, cpu_us)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--servers", default="hypercorn,uvicorn,granian")
    parser.add_argument("--profile", help="a folder: py-spy flame graphs of the api on the trade route")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)")
        return 2
    kinds = args.servers.split(",")
    log_dir = Path(tempfile.mkdtemp(prefix="ftl-bench-servers-"))
    runs: list[Run] = []
    ref_lua = log_dir / "reference.lua"
    _reference_lua(ref_lua)
    for kind in kinds:
        port = free_port()
        ref = Child.start(
            f"reference-{kind}",
            [sys.executable, "-m", "scripts.bench_reference", "--server", kind, "--port", str(port)],
            os.environ, ROOT, log_dir,
        )  # fmt: skip
        try:
            ref.wait_http(f"http://127.0.0.1:{port}/healthz")
            runs.append(_measure(kind, "reference", ref.pid, port, "/ref", ref_lua, args))
            print(f"reference on {kind}: {runs[-1].rps:.0f} req/s", flush=True)
        finally:
            ref.stop()
    runs += asyncio.run(_trade_runs(kinds, args, log_dir))
    _report(runs)
    return 0


async def _trade_runs(kinds: list[str], args: argparse.Namespace, log_dir: Path) -> list[Run]:
    prefix = f"bench{secrets.token_hex(3)}:"
    servers = await bench_servers("ftl-bench-servers-", "durable", redis_prefix=prefix)
    runs = []
    try:
        shown = await pg_settings(servers.database_url, ("fsync", "synchronous_commit"))
        print(f"PostgreSQL {servers.database_label}: {shown}", flush=True)
        tokens, instruments = await _prepare(servers, args.users, 5)
        script = log_dir / "trade.lua"
        _lua(tokens, instruments, script)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")} | {
            "FTL_REDIS_URL": servers.redis_url, "FTL_DATABASE_URL": servers.database_url,
            "FTL_REDIS_PREFIX": servers.redis_prefix, "FTL_FEED": "off", "FTL_LOG_LEVEL": "warning",
            "FTL_JWT_KEYS": JWT_KEYS, "FTL_DRAIN_S": "0", "FTL_SEED_DEMO": "0",
        }  # fmt: skip
        fport = free_port()
        flusher = Child.start(
            "flusher", [sys.executable, "-m", "ftl", "run", "--role=flusher"],
            {**env, "FTL_FLUSHER_PORT": str(fport)}, ROOT, log_dir,
        )  # fmt: skip
        try:
            flusher.wait_http(f"http://127.0.0.1:{fport}/readyz")
            for kind in kinds:
                port = free_port()
                api = Child.start(
                    f"api-{kind}", [sys.executable, "-m", "ftl", "run", "--role=api"],
                    {**env, "FTL_API_PORT": str(port), "FTL_API_SERVER": kind}, ROOT, log_dir,
                )  # fmt: skip
                spy = None
                try:
                    api.wait_http(f"http://127.0.0.1:{port}/readyz")
                    if args.profile:
                        spy = _profile(Path(args.profile) / f"api-{kind}.svg", api.pid, args, log_dir)
                    run = await asyncio.to_thread(
                        _measure, kind, "trade", api.pid, port, "/api/positions/open", script, args
                    )
                    runs.append(run)
                    print(f"trade on {kind}: {run.ok_rps:.0f} filled/s", flush=True)
                finally:
                    if spy is not None:
                        spy.stop(sig=signal.SIGINT)
                    api.stop()
        finally:
            flusher.stop()
    finally:
        await servers.close()
    return runs


def _profile(path: Path, pid: int, args: argparse.Namespace, log_dir: Path) -> Child | None:
    """py-spy (pip install py-spy) sampling the api through the warm-up and the run."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("--profile: py-spy is not installed (pip install py-spy)")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "--nonblocking", "-r", "200", "-f", "flamegraph", "-o", str(path), "-p", str(pid)]
    print(f"profiling the api into {path}", flush=True)
    return Child.start(f"py-spy-{pid}", argv, os.environ, ROOT, log_dir)


def _report(runs: list[Run]) -> None:
    best_ref = max((r.rps for r in runs if r.route == "reference"), default=float("nan"))
    print(f"\n{'server':<10}{'route':<11}{'req/s':>9}{'2xx/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'CPU µs/req':>12}{'÷ best ref':>12}")  # fmt: skip
    for r in runs:
        print(f"{r.server:<10}{r.route:<11}{r.rps:>9.0f}{r.ok_rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
              f"{r.cpu_us:>12.0f}{r.ok_rps / best_ref:>12.2f}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
