"""Benchmark of the ws role: sockets held, RSS and CPU per delivery, fan-out latency, hot instrument.

Starts Redis (embedded unless FTL_REDIS_URL), one ws replica (``python -m ftl.realtime --workers 2``)
and client processes bound to 127.0.0.2, 127.0.0.3, ...; every socket authenticates with a Bearer
header and subscribes to 20 of 1,250 instruments plus one hot instrument. Not a test.

    .venv/bin/python scripts/bench_ws.py --sockets 25000 --client-procs 6
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack
import psutil
import redis

INSTRUMENTS = 1250
HOT = 5000
PER_SOCKET = 20
SECRET = "bench-secret-" + "b" * 40
PUBLISH_LUA = """
return redis.call('PUBLISH', KEYS[1], cmsgpack.pack({type = 'PRICE_UPDATE', id = tonumber(ARGV[1]),
  price = tonumber(ARGV[2]), seq = tonumber(ARGV[3]), ts = tonumber(ARGV[4]), bt = tonumber(ARGV[5])}))
"""


def raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


# --- client process ---------------------------------------------------------------------------


class Sock(asyncio.Protocol):
    def __init__(self, box: ClientBox, ids: list[int], reader: bool) -> None:
        self.box = box
        self.ids = ids
        self.reader = reader
        self.buf = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        token = self.box.token
        sub = msgpack.packb({"op": "subscribe", "ids": self.ids})
        transport.write(
            (
                "GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
            + bytes((0x82, 0x80 | len(sub)))
            + b"\0\0\0\0"
            + sub
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf + data
        if not self.upgraded:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = buf
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.box.failed += 1
                return
            self.upgraded = True
            self.box.connected += 1
            buf = rest
        pos, n = 0, len(buf)
        box = self.box
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            if n < start + length:
                break
            opcode = buf[pos] & 0x0F
            payload = buf[start : start + length]
            pos = start + length
            if opcode == 0x8:
                box.closed_by_server += 1
                continue
            if opcode == 0x9 and self.transport is not None:  # server ping: answer with a pong
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
                continue
            if opcode != 0x2:
                continue
            msg = msgpack.unpackb(payload)
            kind = msg.get("type")
            if kind == "AUTH_OK":
                box.authed += 1
            elif kind == "PRICE_UPDATE":
                if msg.get("snap"):
                    box.snapshots += 1
                elif "bt" in msg:
                    box.received += 1
                    lat = now - msg["bt"] / 1e6
                    if msg["id"] == HOT:
                        box.hot.append(lat)
                    else:
                        box.lat.append(lat)
        self.buf = buf[pos:]

    def stop_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()


class ClientBox:
    def __init__(self, token: str) -> None:
        self.token = token
        self.connected = self.authed = self.snapshots = self.failed = self.closed_by_server = 0
        self.received = 0
        self.lat: list[float] = []
        self.hot: list[float] = []
        self.socks: list[Sock] = []


async def client_main(conn: Connection, index: int, count: int, port: int, seed: int) -> None:
    from ftl.auth.keyring import KeyRing
    from ftl.auth.tokens import Tokens

    raise_nofile(count + 1000)
    tokens = Tokens(KeyRing.of((("bench", SECRET),)), 3600, 7200)
    box = ClientBox(tokens.issue_access(1000 + index))
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    src = f"127.0.0.{2 + index}"
    for i in range(count):
        ids = [*rng.sample(range(1, INSTRUMENTS + 1), PER_SOCKET), HOT]
        sock = Sock(box, ids, reader=True)
        try:
            await loop.create_connection(lambda s=sock: s, "127.0.0.1", port, local_addr=(src, 0))  # type: ignore[misc]
        except OSError:
            box.failed += 1
            continue
        box.socks.append(sock)
        if i % 100 == 99:
            await asyncio.sleep(0.01)
    conn.send(("connected", len(box.socks)))
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "stats":
            conn.send(
                {
                    "connected": box.connected,
                    "authed": box.authed,
                    "snapshots": box.snapshots,
                    "failed": box.failed,
                    "received": box.received,
                    "closed_by_server": box.closed_by_server,
                    "lat": box.lat,
                    "hot": box.hot,
                }
            )
        elif cmd == "reset":
            box.lat, box.hot, box.received = [], [], 0
            conn.send("ok")
        elif cmd == "stop_reading":
            n = int(len(box.socks) * arg)
            for sock in box.socks[:n]:
                sock.reader = False
                sock.stop_reading()
            conn.send(n)
        elif cmd == "exit":
            conn.send("bye")
            return


def client_proc(conn: Connection, index: int, count: int, port: int, seed: int) -> None:
    asyncio.run(client_main(conn, index, count, port, seed))


# --- orchestration ----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def server_procs(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children()]


def rss_kib(procs: list[psutil.Process]) -> float:
    return sum(p.memory_info().rss for p in procs) / 1024


def cpu_s(procs: list[psutil.Process]) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs)


def http_json(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def per_worker(port: int, path: str, workers: int) -> dict[int, dict[str, Any]]:
    """SO_REUSEPORT spreads connections by hash: ask until every worker answered once."""
    seen: dict[int, dict[str, Any]] = {}
    for _ in range(200):
        info = http_json(port, path)
        seen.setdefault(info["pid"], info)
        if len(seen) >= workers:
            break
    return seen


def gather(pipes: list[Connection]) -> dict[str, Any]:
    for p in pipes:
        p.send(("stats", None))
    out: dict[str, Any] = {"lat": [], "hot": []}
    for p in pipes:
        stats = p.recv()
        for k, v in stats.items():
            if isinstance(v, list):
                out[k] += v
            else:
                out[k] = out.get(k, 0) + v
    return out


def reset(pipes: list[Connection]) -> None:
    for p in pipes:
        p.send(("reset", None))
    for p in pipes:
        p.recv()


def publish_steady(r: redis.Redis, rate: int, seconds: float, seq0: int) -> int:
    """Publish ``rate`` updates/s on random instruments for ``seconds``; return the count."""
    script = r.register_script(PUBLISH_LUA)
    rng = random.Random(7)
    sent, start = 0, time.monotonic()
    tick = 0.01
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate) - sent
        if due > 0:
            pipe = r.pipeline(transaction=False)
            for _ in range(due):
                iid = rng.randint(1, INSTRUMENTS)
                now_us = int(time.time() * 1e6)
                script(
                    keys=[f"price:{iid}"], args=[iid, 1000, seq0 + sent, now_us // 1000, now_us], client=pipe
                )
                sent += 1
            pipe.execute()
        time.sleep(tick)
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=25_000)
    parser.add_argument("--client-procs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=100, help="steady updates/s over 1,250 instruments")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--raw-rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    raise_nofile(65_536)

    tmp = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    tmp.chmod(0o755)
    embedded = None
    redis_url = os.environ.get("FTL_REDIS_URL")
    if not redis_url:
        from ftl.persistence.embedded import EmbeddedRedis

        embedded = EmbeddedRedis(tmp)
        asyncio.run(embedded.start())
        redis_url = embedded.url
    r = redis.Redis.from_url(redis_url)
    pipe = r.pipeline(transaction=False)
    for iid in [*range(1, INSTRUMENTS + 1), HOT]:
        pipe.hset(f"instrument:{iid}", mapping={"index": 1000, "skew": 0, "depth": 10_000, "pseq": 1})
    pipe.execute()

    from ftl.persistence.processes import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    env.update(
        FTL_REDIS_URL=redis_url,
        FTL_JWT_KEYS=f"bench:{SECRET}",
        FTL_WS_PORT=str(port),
        FTL_DATA_DIR=str(tmp),
        FTL_LOG_LEVEL="warning",
        FTL_DRAIN_S="0",
        # /bench/raw and /bench/stats on each worker: scripts/hooks/sitecustomize.py (not the product)
        FTL_BENCH_WS_HOOKS="1",
        PYTHONPATH=str(Path(__file__).resolve().parent / "hooks"),
    )
    server = subprocess.Popen([sys.executable, "-m", "ftl.realtime", "--workers", str(args.workers)], env=env)
    results: dict[str, Any] = {"sockets_target": args.sockets, "workers": args.workers}
    procs_: list[mp.Process] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if len(per_worker(port, "/bench/stats", args.workers)) >= args.workers:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("ws replica did not start")
            time.sleep(0.2)
        procs = server_procs(server.pid)
        base_rss = rss_kib(procs)
        print(f"replica up: {len(procs)} processes, RSS {base_rss / 1024:.1f} MiB", flush=True)

        ctx = mp.get_context("fork")
        pipes: list[Connection] = []
        per = args.sockets // args.client_procs
        t0 = time.monotonic()
        for i in range(args.client_procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_proc, args=(child, i, per, port, i), daemon=True)
            proc.start()
            procs_.append(proc)
            pipes.append(parent)
        opened = sum(p.recv()[1] for p in pipes)
        target = per * args.client_procs
        while True:
            stats = gather(pipes)
            if stats["snapshots"] >= target * (PER_SOCKET + 1) * 0.999 or time.monotonic() - t0 > 180:
                break
            time.sleep(1)
        connect_s = time.monotonic() - t0
        time.sleep(2)
        stats = gather(pipes)
        rss = rss_kib(procs)
        results.update(
            sockets_opened=opened,
            sockets_authenticated=stats["authed"],
            handshake_failures=stats["failed"],
            snapshots=stats["snapshots"],
            connect_s=round(connect_s, 1),
            server_rss_mib=round(rss / 1024, 1),
            rss_kib_per_socket=round((rss - base_rss) / max(stats["authed"], 1), 1),
        )
        print(json.dumps(results), flush=True)

        def steady(label: str) -> None:
            reset(pipes)
            cpu0 = cpu_s(procs)
            sent = publish_steady(r, args.rate, args.seconds, 10)
            time.sleep(1.0)
            cpu = cpu_s(procs) - cpu0
            got = gather(pipes)
            lat = got["lat"]
            results[label] = {
                "updates": sent,
                "deliveries": got["received"],
                "server_cpu_s": round(cpu, 2),
                "cpu_us_per_delivery": round(cpu * 1e6 / max(got["received"], 1), 2),
                "p50_ms": round(pct(lat, 0.5) * 1000, 2),
                "p99_ms": round(pct(lat, 0.99) * 1000, 2),
            }
            print(label, json.dumps(results[label]), flush=True)

        steady("steady")
        steady("steady_again")  # the same phase twice: run-to-run noise of p99 on this machine

        writes = 0
        raw_cpu = 0.0
        walls: list[float] = []
        for _ in range(5):  # one pre-built frame to every socket, like a hot broadcast
            raw = per_worker(port, f"/bench/raw?n={args.raw_rounds}", args.workers)
            writes += sum(v["writes"] for v in raw.values())
            raw_cpu += sum(v["cpu_s"] for v in raw.values())
            walls.append(max(v["wall_s"] for v in raw.values()))
            time.sleep(1.0)
        results["raw_loop"] = {
            "writes": writes,
            "cpu_us_per_write": round(raw_cpu * 1e6 / max(writes, 1), 2),
            "broadcast_wall_ms": [round(w * 1000, 1) for w in walls],
        }
        print("raw", json.dumps(results["raw_loop"]), flush=True)

        # Hot instrument: one update to every socket.
        hot_runs = []
        for k in range(5):
            reset(pipes)
            now_us = int(time.time() * 1e6)
            r.eval(PUBLISH_LUA, 1, f"price:{HOT}", HOT, 1000 + k, 100 + k, now_us // 1000, now_us)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                got = gather(pipes)
                if len(got["hot"]) >= stats["authed"] * 0.999:
                    break
                time.sleep(0.2)
            fan = per_worker(port, "/bench/stats", args.workers)
            hot_runs.append(
                {
                    "received": len(got["hot"]),
                    "server_send_ms": round(max(v["last_fanout_s"] for v in fan.values()) * 1000, 1),
                    "receipt_p50_ms": round(pct(got["hot"], 0.5) * 1000, 1),
                    "receipt_p99_ms": round(pct(got["hot"], 0.99) * 1000, 1),
                    "receipt_max_ms": round(max(got["hot"], default=float("nan")) * 1000, 1),
                }
            )
            time.sleep(0.5)
        results["hot"] = hot_runs
        print("hot", json.dumps(hot_runs), flush=True)

        for p in pipes:
            p.send(("stop_reading", 0.05))
        stopped = sum(p.recv() for p in pipes)
        results["non_reading_sockets"] = stopped
        steady("steady_5pct_not_reading")
        base_p99 = max(results["steady"]["p99_ms"], results["steady_again"]["p99_ms"])
        results["p99_rise_pct"] = round(
            (results["steady_5pct_not_reading"]["p99_ms"] - base_p99) * 100 / max(base_p99, 1e-9), 1
        )
        results["server_rss_mib_end"] = round(rss_kib(procs) / 1024, 1)
        results["closed_by_server"] = gather(pipes)["closed_by_server"]
        print(json.dumps(results, indent=2), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        for p in pipes:
            p.send(("exit", None))
        return 0
    finally:
        for proc in procs_:
            proc.kill()
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
