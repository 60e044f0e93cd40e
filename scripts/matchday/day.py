"""`MatchDay`: the mixins put together, and `run`, the day from start to report."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

from scripts.matchday.cluster import ClusterMixin
from scripts.matchday.faults import FaultsMixin
from scripts.matchday.http_client import user_ip
from scripts.matchday.invariants import InvariantsMixin
from scripts.matchday.monitor import MonitorMixin
from scripts.matchday.report import ReportMixin
from scripts.matchday.traders import STRATEGIES, TradersMixin
from scripts.matchday.users import User
from scripts.matchday.ws_clients import WsClientsMixin


class MatchDay(
    ClusterMixin, TradersMixin, WsClientsMixin, MonitorMixin, FaultsMixin, InvariantsMixin, ReportMixin
):
    """One match day; its state is `MatchDayState` (state.py), its parts the mixins."""

    async def run(self) -> int:
        a = self.args
        try:
            await self.start_servers()
            n_informed = max(1, a.informed) if a.users >= 4 else 0
            for i in range(a.users):
                strategy = "informed" if i < n_informed else STRATEGIES[i % 3]
                self.users.append(User(i, strategy, user_ip(i), i % 2, str(10**15 + a.seed * 10**6 + i)))
            sem = asyncio.Semaphore(32)

            async def login(u: User) -> None:
                async with sem:
                    await self.login(u)

            t = time.monotonic()
            await asyncio.gather(*(login(u) for u in self.users))
            self.event(
                f"{len(self.users)} users signed in with Google ID tokens in {time.monotonic() - t:.1f} s"
            )
            workers = self.start_ws_workers()
            observers = [asyncio.create_task(self.observe()), asyncio.create_task(self.watch_market())]
            self.start_t = time.monotonic()
            self.set_phase("before faults" if not a.no_faults else "steady")
            users = [asyncio.create_task(self.run_user(u)) for u in self.users]
            fault_task = None if a.no_faults else asyncio.create_task(self.faults())
            await asyncio.sleep(a.duration)
            if fault_task is not None and not fault_task.done():
                self.event("faults still running at the end of --duration; waiting for them")
                await fault_task
            elif fault_task is not None:
                fault_task.result()
            self.end_t = time.monotonic()
            self.stop.set()
            await asyncio.gather(*users)
            self.set_phase("wind-down")
            await self.wind_down()
            self.phase_log.append((time.monotonic(), "end"))
            for proc, _ in workers:
                proc.send_signal(signal.SIGTERM)
            ws_stats = []
            for proc, path in workers:
                try:
                    await asyncio.to_thread(proc.wait, 60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                if path.exists():
                    ws_stats.append(json.loads(path.read_text()))
            for task in observers:
                task.cancel()
            await asyncio.gather(*observers, return_exceptions=True)
            for user in self.users:
                user.close()
            # stop the price feed and the apis: the audit then sees a quiet system
            for role in (*self.apis, self.ws):
                await asyncio.to_thread(role.stop)
            drain_s = await self.drain()
            checks, audit_out = await self.verify()
            print(self.report(ws_stats, drain_s, checks, audit_out))
            return 0 if all(ok for _, ok, _ in checks) else 1
        finally:
            await self.shutdown()
            if not a.keep:
                import shutil

                shutil.rmtree(self.work, ignore_errors=True)
            else:
                print(f"kept {self.work}")
