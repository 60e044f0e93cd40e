"""Liveness and readiness of a process: its dependencies answer, and it is not draining."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[None]]


@dataclass
class Health:
    """Shared by every role of a process; ``/readyz`` reports 503 while draining or degraded."""

    checks: dict[str, Check] = field(default_factory=dict)
    draining: bool = False
    timeout_s: float = 1.0

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def _run(self, check: Check) -> bool:
        try:
            await asyncio.wait_for(check(), self.timeout_s)
        except Exception:
            return False
        return True

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(self.checks[n]) for n in names))
        detail = {n: ("ok" if ok else "fail") for n, ok in zip(names, results, strict=True)}
        if self.draining:
            detail["draining"] = "yes"
        return (not self.draining and all(results)), detail


def metrics_payload() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
