"""The WebSocket clients: the simulator's market watcher, and the `--ws-worker` client processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import msgpack

from ftl.persistence.processes import _child_setup
from scripts.matchday.cluster import ROOT
from scripts.matchday.state import MatchDayState


class WsClientsMixin(MatchDayState):
    """The ws clients of the day: one market watcher here, the many in worker processes."""

    async def watch_market(self) -> None:
        """One ws socket of the simulator: the market view of momentum and contrarian traders."""
        from websockets.asyncio.client import connect

        url = f"ws://127.0.0.1:{self.ports['ws']}/ws"
        while not self.stop.is_set():
            try:
                token = self.users[0].token
                async with connect(
                    url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None
                ) as ws:
                    await ws.send(msgpack.packb({"op": "subscribe", "ids": self.instruments[:200]}))
                    async for frame in ws:
                        msg = msgpack.unpackb(frame)
                        if msg.get("type") == "PRICE_UPDATE":
                            self.market.update(msg)
                        if self.stop.is_set():
                            return
            except Exception:  # closed, refused: reconnect
                self.ws_watcher_reconnects += 1
                await asyncio.sleep(0.5)

    def start_ws_workers(self) -> list[tuple[subprocess.Popen[bytes], Path]]:
        n = self.args.ws_clients
        if n <= 0:
            return []
        procs = self.args.ws_procs or (1 if n <= 300 else 2)
        out = []
        for w in range(procs):
            count = n // procs + (1 if w < n % procs else 0)
            spec = {
                "url": f"ws://127.0.0.1:{self.ports['ws']}/ws",
                "tokens": [u.token for u in self.users],
                "ids": self.instruments,
                "subs": self.args.ws_subs,
                "clients": count,
                "seed": self.args.seed * 100 + w,
                "out": str(self.work / f"ws-worker-{w}.json"),
            }
            spec_path = self.work / f"ws-worker-{w}.spec.json"
            spec_path.write_text(json.dumps(spec))
            with open(self.logs / f"ws-worker-{w}.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "scripts.matchday", "--ws-worker", str(spec_path)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_child_setup(None, None),
                )
            out.append((proc, Path(spec["out"])))
        return out


# ---------------------------------------------------------------------------------------------
# ws worker process: many clients, per-second latency samples


async def ws_worker(spec_path: str) -> None:
    from websockets.asyncio.client import connect

    spec = json.loads(Path(spec_path).read_text())
    rng = random.Random(spec["seed"])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    stats: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    buckets: dict[int, list[float]] = defaultdict(list)
    counts: Counter[int] = Counter()
    live: set[int] = set()

    async def client(i: int) -> None:
        ids = rng.sample(spec["ids"], min(spec["subs"], len(spec["ids"])))
        token = spec["tokens"][i % len(spec["tokens"])]
        last: dict[int, int] = {}
        state: dict[int, tuple[Any, Any]] = {}
        first = True
        while not stop.is_set():
            try:
                async with connect(
                    spec["url"],
                    additional_headers={"Authorization": f"Bearer {token}"},
                    compression=None,
                    open_timeout=20,
                ) as ws:
                    if not first:
                        stats["reconnects"] += 1
                    first = False
                    live.add(i)
                    await ws.send(msgpack.packb({"op": "subscribe", "ids": ids}))
                    while not stop.is_set():
                        try:
                            frame = await asyncio.wait_for(ws.recv(), 1.0)
                        except TimeoutError:
                            continue
                        received = time.time()
                        msg = msgpack.unpackb(frame)
                        if msg.get("type") != "PRICE_UPDATE":
                            continue
                        iid, seq = int(msg["id"]), int(msg["seq"])
                        moved = state.get(iid) != (msg.get("index"), msg.get("skew"))
                        state[iid] = (msg.get("index"), msg.get("skew"))
                        if msg.get("snap"):
                            stats["snapshots"] += 1
                        elif not moved:  # a status-only change (halt, resume): ts is the index's time
                            stats["status_only"] += 1
                        else:
                            stats["deliveries"] += 1
                            if iid in last and seq > last[iid] + 1:
                                stats["gaps"] += 1
                            sec = int(received)
                            counts[sec] += 1
                            b = buckets[sec]
                            lat = received * 1000 - float(msg["ts"])
                            if len(b) < 300:
                                b.append(lat)
                            else:
                                j = rng.randrange(counts[sec])
                                if j < 300:
                                    b[j] = lat
                        last[iid] = max(seq, last.get(iid, -1))
            except Exception as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                codes[str(code if code is not None else type(exc).__name__)] += 1
                if first:
                    stats["failed_connects"] += 1
            finally:
                live.discard(i)
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rng.uniform(0.2, 1.0))

    tasks = []
    for i in range(spec["clients"]):
        tasks.append(asyncio.create_task(client(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await stop.wait()
    stats["connected"] = len(live)
    await asyncio.wait(tasks, timeout=10)
    for t in tasks:
        t.cancel()
    Path(spec["out"]).write_text(
        json.dumps({**stats, "close_codes": codes, "buckets": {str(k): v for k, v in buckets.items()}})
    )
