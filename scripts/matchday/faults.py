"""The fault schedule and its injection: kill -9 Redis, an api, the flusher; a slow ws burst."""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import time
from typing import Any

import msgpack

from ftl.persistence.embedded import EmbeddedRedis
from scripts.matchday.cluster import wait_ready
from scripts.matchday.state import MatchDayState


class FaultsMixin(MatchDayState):
    """Faults at fixed fractions of --duration, and how long the system took to recover."""

    async def until(self, t: float) -> None:
        delay = self.start_t + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def first_ok_after(self, t: float) -> float | None:
        times = [s[1] + s[2] / 1000 for s in self.samples if s[3] and s[1] >= t]
        return min(times) if times else None

    async def wait_first_ok(self, t: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.first_ok_after(t)
            if found is not None:
                return found - t
            await asyncio.sleep(0.1)
        return None

    async def faults(self) -> None:
        d = self.args.duration
        if self.redis is not None:
            await self.until(0.18 * d)
            self.set_phase("Redis killed -> first trade")
            t = time.monotonic()
            assert self.redis.server.proc is not None
            self.redis.server.proc.kill()
            self.redis.server.proc.wait(10)
            self.event("fault: kill -9 Redis")
            await asyncio.sleep(1.0)
            self.redis = EmbeddedRedis(self.work, port=self.redis.port)
            await self.redis.start()
            self.event(f"Redis restarted empty ({time.monotonic() - t:.1f} s after the kill)")
            rec = await self.wait_first_ok(t, 120)
            self.fault_results["redis_recovery_s"] = rec
            self.event(f"first confirmed trade {rec if rec is None else round(rec, 2)} s after the kill")
            self.set_phase("after Redis recovery")
        await self.until(0.38 * d)
        # the api holding the replay leader lock, when we can tell (kill it: the feed must fail over)
        victim = 0
        self.set_phase("api killed -> restarted")
        leader_before = self.leader
        t = time.monotonic()
        self.api_alive[victim] = False
        await asyncio.to_thread(self.apis[victim].kill9)
        self.event(f"fault: kill -9 api{victim}")
        self.apis[victim].start()
        took = await wait_ready(self.api_port(victim), self.apis[victim], 120)
        self.api_alive[victim] = True
        self.fault_results["api_restart_s"] = time.monotonic() - t
        self.event(f"api{victim} restarted and ready ({took:.1f} s)")
        self.set_phase("after api restart")
        deadline = time.monotonic() + 15
        while self.leader == leader_before and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        moved = self.leader != leader_before
        self.fault_results["leader"] = (
            "moved to another api" if moved else "stayed (victim was not the leader)"
        )
        self.event(f"replay leader {self.fault_results['leader']}")
        await self.until(0.55 * d)
        self.set_phase("flusher killed -> ready")
        t = time.monotonic()
        await asyncio.to_thread(self.flusher.kill9)
        self.event("fault: kill -9 flusher")
        self.flusher.start()
        await wait_ready(self.ports["flusher"], self.flusher, 120)
        self.fault_results["flusher_restart_s"] = time.monotonic() - t
        self.event(f"flusher restarted and ready ({time.monotonic() - t:.1f} s)")
        self.set_phase("after flusher restart")
        await self.until(0.7 * d)
        self.set_phase("slow ws burst")
        self.fault_results["slow"] = await self.slow_burst(min(15.0, max(6.0, 0.15 * d)))
        self.set_phase("after slow ws burst")

    async def slow_burst(self, hold_s: float) -> dict[str, Any]:
        n = self.args.slow_clients or max(20, self.args.ws_clients // 10)
        self.event(f"fault: {n} slow ws clients (subscribe to every match player, never read)")
        socks: list[socket.socket] = []
        loop = asyncio.get_running_loop()
        sub = msgpack.packb({"op": "subscribe", "ids": self.instruments[:200]})
        for i in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, ("127.0.0.1", self.ports["ws"]))
                token = self.users[i % len(self.users)].token
                key = base64.b64encode(secrets.token_bytes(16)).decode()
                await loop.sock_sendall(
                    sock,
                    (
                        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"Authorization: Bearer {token}\r\n\r\n"
                    ).encode(),
                )
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
                    if not chunk:
                        break
                    head += chunk
                await loop.sock_sendall(sock, ws_frame(sub))
                socks.append(sock)
            except (TimeoutError, OSError):
                sock.close()
        self.event(f"{len(socks)} slow clients connected; holding {hold_s:.0f} s")
        await asyncio.sleep(hold_s)
        dropped = 0
        for sock in socks:
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        dropped += 1
                        break
            except BlockingIOError:
                pass
            except OSError:
                dropped += 1
            sock.close()
        self.event(f"slow clients: {dropped} of {len(socks)} already dropped by the server")
        return {"clients": len(socks), "dropped_by_server": dropped, "hold_s": hold_s}


def ws_frame(payload: bytes) -> bytes:
    """A masked (zero key) binary client frame."""
    n = len(payload)
    head = bytes((0x82, 0x80 | n)) if n < 126 else bytes((0x82, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload
