"""The match-day system test, small: every role as its own process, faults on, invariants checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

INVARIANTS = (
    "ftl audit exits 0",
    "every confirmed trade is in PostgreSQL exactly once",
    "one trade per idempotency key",
    "money conserved",
    "no negative balance",
    "skew = sum(open long) - sum(open short)",
    "every confirmed fill within the client's acceptable price",
    "no 500 reply",
)


@pytest.mark.timeout(900)
def test_matchday_short_run_with_faults_holds_every_invariant() -> None:
    args = ["--users", "30", "--ws-clients", "50", "--duration", "50", "--speed", "100", "--seed", "7"]
    out = subprocess.run(
        [sys.executable, "-m", "scripts.matchday", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    report = out.stdout
    print(report[-6000:])
    assert out.returncode == 0, report[-6000:] + out.stderr[-4000:]
    for name in INVARIANTS:
        assert f"INVARIANT PASS: {name}" in report, name
    assert "INVARIANT FAIL" not in report
    assert "RESULT: OK, Redis and PostgreSQL agree" in report
    assert "fault: kill -9 Redis" in report
    assert "fault: kill -9 api0" in report
    assert "fault: kill -9 flusher" in report
    assert "slow clients connected" in report
    assert "RESULT: PASS" in report
