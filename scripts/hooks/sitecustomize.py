"""Benchmark-only hooks of the ws role (scripts/bench_ws.py); the product has none of them.

Python imports ``sitecustomize`` at start-up from ``sys.path``. ``scripts/bench_ws.py`` starts
``python -m ftl.realtime`` with this folder on ``PYTHONPATH`` and ``FTL_BENCH_WS_HOOKS=1`` (its
child workers inherit both), so each worker also answers two plain HTTP paths on its port:

- ``/bench/raw?n=N``: the physical limit: a pre-built PRICE_UPDATE frame written N times to every
  socket in a bare loop, with the CPU and wall time it took;
- ``/bench/stats``: the last fan-out (sockets, seconds) and the worker's CPU so far.

Nothing in ``ftl/`` reads the variable and the wheel does not ship ``scripts/``.
"""

from __future__ import annotations

import os

if os.environ.get("FTL_BENCH_WS_HOOKS") == "1":
    import resource
    import time
    from typing import Any

    from ftl.realtime import protocol, server

    _route = server.WsServer._route

    def _bench(self: server.WsServer, path: bytes, full: bytes) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        info: dict[str, Any] = {"pid": os.getpid(), "sockets": len(self.sessions)}
        if path == b"/bench/raw":
            rounds = int(full.partition(b"n=")[2] or b"1")
            frame_bytes = protocol.frame(
                protocol.price_update(1, 1, 1, int(time.time() * 1000), index=1, skew=0)
            )
            writes = [c.write for c in self.hub.clients if not c.paused]
            cpu0, t0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
            for _ in range(rounds):
                for write in writes:
                    write(frame_bytes)
            after = resource.getrusage(resource.RUSAGE_SELF)
            info.update(
                writes=rounds * len(writes),
                cpu_s=after.ru_utime + after.ru_stime - cpu0,
                wall_s=time.perf_counter() - t0,
                frame_len=len(frame_bytes),
            )
        sent, seconds = self.hub.last_fanout
        info.update(last_fanout_sockets=sent, last_fanout_s=seconds)
        info["cpu_s_total"] = usage.ru_utime + usage.ru_stime
        return info

    def _route_with_bench(self: server.WsServer, request: Any) -> Any:
        path = request.path.split(b"?", 1)[0]
        if path.startswith(b"/bench/"):
            return server._json(200, _bench(self, path, request.path))
        return _route(self, request)

    server.WsServer._route = _route_with_bench  # type: ignore[method-assign]
