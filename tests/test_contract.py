"""The API contract: schemathesis against a running ``ftl dev`` with the generated OpenAPI document.

Every phase (examples, coverage, fuzzing, stateful) and every check: a response that breaks the
document, a 5xx, a schema-valid request refused or a schema-violating one accepted, ... is a
failure. Bounded (``FTL_CONTRACT_EXAMPLES`` examples an operation, default 100; a fixed seed,
``FTL_CONTRACT_SEED``, so CI replays the same requests) to well under four minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import FtlProcess, ftl_process, http_status, wait_for

pytestmark = pytest.mark.slow

EXAMPLES = os.environ.get("FTL_CONTRACT_EXAMPLES", "100")
SEED = os.environ.get("FTL_CONTRACT_SEED", "20261204")


@pytest.fixture(scope="module")
def ftl_dev() -> Iterator[FtlProcess]:
    with ftl_process(["dev"], env={"FTL_FEED": "off"}) as proc:
        wait_for(lambda: http_status(proc.url("api", "/readyz")) == 200, 90, "api /readyz")
        yield proc


def _token(proc: FtlProcess) -> str:
    reply = httpx.post(proc.url("api", "/api/auth/dev"), json={"email": "contract@x.test"}, timeout=10)
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def test_the_api_keeps_its_openapi_contract(ftl_dev: FtlProcess, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "schemathesis"
    assert st.exists() or shutil.which("schemathesis"), "schemathesis is a dev dependency"
    argv = [
        str(st),
        "run",
        ftl_dev.url("api", "/api/openapi.json"),
        "--phases=examples,coverage,fuzzing,stateful",
        "--checks=all",
        f"--max-examples={EXAMPLES}",
        f"--seed={SEED}",
        "--workers=1",
        "--header",
        f"Authorization: Bearer {_token(ftl_dev)}",
    ]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "passed" in out and "failure" not in out.split("SUMMARY")[-1].lower(), out[-3000:]
