"""Signing keys: configured ones, or a dev key generated once per data dir (mode 0600)."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ftl.auth.keyring import DEV_KEY_FILE, KeyRing, dev_secret, load_keyring
from ftl.config import Settings


def test_configured_keys_newest_first(tmp_path: Path) -> None:
    ring = load_keyring(Settings(data_dir=tmp_path, jwt_keys=(("b", "b" * 32), ("a", "a" * 32))))
    assert ring.signing_kid == "b"
    assert ring.get("a") is not None
    assert ring.get("c") is None
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_dev_key_is_generated_once_and_private(tmp_path: Path) -> None:
    first = load_keyring(Settings(env="dev", data_dir=tmp_path / "data"))
    path = tmp_path / "data" / DEV_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_keyring(Settings(env="dev", data_dir=tmp_path / "data"))
    assert first.signing_key.as_dict(private=True) == second.signing_key.as_dict(private=True)
    other = load_keyring(Settings(env="dev", data_dir=tmp_path / "elsewhere"))
    assert other.signing_key.as_dict(private=True) != first.signing_key.as_dict(private=True)


def test_processes_racing_for_the_dev_key_agree(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        secrets_seen = set(pool.map(lambda _: dev_secret(tmp_path), range(32)))
    assert len(secrets_seen) == 1
    assert [p.name for p in tmp_path.iterdir()] == [DEV_KEY_FILE]


def test_production_without_keys_refuses(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="FTL_JWT_KEYS"):
        load_keyring(Settings(env="production", data_dir=tmp_path))


def test_empty_ring_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        KeyRing.of(())
