"""Settings are read from FTL_* variables only, validated all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftl import config


def test_defaults_match_the_design() -> None:
    s = config.load({})
    assert (s.role, s.env, s.host) == ("all", "dev", "127.0.0.1")
    assert (s.api_port, s.ws_port, s.flusher_port) == (8080, 8081, 8082)
    assert s.redis_url is None and s.database_url is None
    assert s.embedded_redis and s.embedded_postgres
    assert s.data_dir == Path(".ftl")
    assert (s.access_ttl_s, s.refresh_ttl_s) == (900, 604800)
    assert s.start_balance == 1_000_000
    assert s.log_format == "console"
    assert s.feed.startswith("replay:")


def test_every_invalid_value_is_reported_at_once() -> None:
    with pytest.raises(config.ConfigError) as info:
        config.load(
            {
                "FTL_ROLE": "worker",
                "FTL_API_PORT": "http",
                "FTL_START_BALANCE": "-5",
                "FTL_REDIS_URL": "localhost:6379",
                "FTL_JWT_KEYS": "k1:short",
            }
        )
    text = str(info.value)
    for name in ("FTL_ROLE", "FTL_API_PORT", "FTL_START_BALANCE", "FTL_REDIS_URL", "FTL_JWT_KEYS"):
        assert name in text
    assert len(info.value.problems) == 5


def test_production_requires_urls_and_keys() -> None:
    with pytest.raises(config.ConfigError) as info:
        config.load({"FTL_ENV": "production"})
    assert len(info.value.problems) == 3
    s = config.load(
        {
            "FTL_ENV": "production",
            "FTL_REDIS_URL": "redis://cache:6379/0",
            "FTL_DATABASE_URL": "postgresql://ftl@db/ftl",
            "FTL_JWT_KEYS": "k2:" + "b" * 40 + ",k1:" + "a" * 40,
        }
    )
    assert s.production and s.log_format == "json" and s.feed == "sportmonks"
    assert [kid for kid, _ in s.jwt_keys] == ["k2", "k1"]


def test_settings_are_frozen() -> None:
    s = config.load({"FTL_ROLE": "ws"})
    with pytest.raises(AttributeError):
        s.role = "api"  # type: ignore[misc]
    assert s.replace(role="api").role == "api" and s.role == "ws"


def test_client_ids_are_a_list() -> None:
    s = config.load({"FTL_GOOGLE_CLIENT_ID": "a.apps, b.apps"})
    assert s.google_client_ids == ("a.apps", "b.apps")


def test_only_config_reads_ftl_variables() -> None:
    import re

    reads = re.compile(r"""(environ(\.get)?[\[(]|getenv\()\s*["']FTL_""")
    root = Path(config.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "config.py" and reads.search(path.read_text())
    ]
    assert offenders == []
    assert reads.search('os.environ.get("FTL_ROLE")')  # the pattern does catch a read


def test_sportmonks_calls_per_hour_is_the_poller_budget() -> None:
    assert config.load({}).sportmonks_calls_per_hour == 2000  # the smallest plan's
    assert config.load({"FTL_SPORTMONKS_CALLS_PER_HOUR": "3000"}).sportmonks_calls_per_hour == 3000
    for bad in ("0", "59", "lots", "2000.5"):
        with pytest.raises(config.ConfigError) as info:
            config.load({"FTL_SPORTMONKS_CALLS_PER_HOUR": bad})
        assert "FTL_SPORTMONKS_CALLS_PER_HOUR" in str(info.value)
