"""Settings: the only reader of ``FTL_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

ROLES = ("api", "ws", "flusher", "all")
ENVS = ("dev", "test", "production")
LOG_FORMATS = ("console", "json")

T = TypeVar("T")


class ConfigError(ValueError):
    """Every invalid setting, reported at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Typed, frozen view of the environment. Build it with :func:`load`."""

    role: str = "all"
    env: str = "dev"
    redis_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Path(".ftl")
    host: str = "127.0.0.1"
    api_port: int = 8080
    ws_port: int = 8081
    flusher_port: int = 8082
    log_format: str = "console"
    jwt_keys: tuple[tuple[str, str], ...] = ()
    access_ttl_s: int = 900
    refresh_ttl_s: int = 604800
    google_client_ids: tuple[str, ...] = ()
    google_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    sportmonks_url: str = "https://api.sportmonks.com/v3/football"
    sportmonks_token: str | None = None
    sportmonks_calls_per_hour: int = 2000  # the plan's calls per hour per entity: the poller's budget
    feed: str = "replay:bundled"
    start_balance: int = 1_000_000
    drain_s: float = 1.0
    http_idle_s: float = 20.0  # the api's longest wait for a request head (idle keep-alive included)
    api_server: str = "granian"  # granian, uvicorn or hypercorn (ftl/web/server.py; docs/benchmarks.md)
    redis_prefix: str = ""
    log_level: str = "info"
    fee_bps: int = 10
    mm_bps: int = 500
    max_index_age_s: int = 0
    ws_workers: int = 1
    replay_speed: float = 10.0
    seed_demo: bool = True
    event_loop: str = "uvloop"
    mtm_interval_s: float = 1.0
    snapshot_interval_s: float = 300.0
    snapshot_top: int = 1000
    leaderboard_epoch_ms: int = 1_780_272_000_000
    leaderboard_slot_ms: int = 4000
    ledger_batch_max: int = 64  # group commit: trades per PostgreSQL transaction at most
    ledger_batch_wait_ms: float = 1.0  # group commit: how long a batch waits for company
    ledger_batches_in_flight: int = 2  # group commit: batches of one process in flight at once
    ledger_write_timeout_s: float = 2.0  # the api retries a transient write failure this long
    flusher_max_tries: int = 5  # a non-transient failure this many times: dead letter

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def get(self, name: str, default: T, parse: Callable[[str], T], check: str = "") -> T:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            hint = f" ({check})" if check else ""
            self.problems.append(f"{name}={raw!r}: {exc}{hint}")
            return default


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw.strip())
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in schemes:
            raise ValueError(f"must be a URL with scheme {' or '.join(schemes)}")
        return value

    return parse


def _jwt_keys(raw: str) -> tuple[tuple[str, str], ...]:
    keys: list[tuple[str, str]] = []
    for item in raw.split(","):
        kid, sep, secret = item.strip().partition(":")
        if not sep or not kid or not secret:
            raise ValueError("expected comma-separated kid:secret pairs, newest first")
        if len(secret) < 32:
            raise ValueError(f"secret of key {kid!r} must be at least 32 characters")
        keys.append((kid, secret))
    if len({kid for kid, _ in keys}) != len(keys):
        raise ValueError("key ids must be unique")
    return tuple(keys)


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _feed(raw: str) -> str:
    value = raw.strip()
    if value in ("sportmonks", "off") or (value.startswith("replay:") and len(value) > 7):
        return value
    raise ValueError("must be sportmonks, off or replay:PATH")


def _prefix(raw: str) -> str:
    if any(ch.isspace() for ch in raw):
        raise ValueError("must not contain white space")
    return raw


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``environ`` (default: ``os.environ``), then apply ``overrides``."""
    env_map: Mapping[str, str] = os.environ if environ is None else environ
    r = _Reader(env_map)
    env = r.get("FTL_ENV", "dev", _choice(ENVS))
    production = env == "production"
    default_feed = "sportmonks" if production else "replay:bundled"
    default_log = "json" if production else "console"
    settings = Settings(
        role=r.get("FTL_ROLE", "all", _choice(ROLES)),
        env=env,
        redis_url=r.get("FTL_REDIS_URL", None, _url(("redis", "rediss", "unix"))),
        database_url=r.get("FTL_DATABASE_URL", None, _url(("postgresql", "postgres"))),
        data_dir=r.get("FTL_DATA_DIR", Path(".ftl"), Path),
        host=r.get("FTL_HOST", "127.0.0.1", str.strip),
        api_port=r.get("FTL_API_PORT", 8080, _int_range(0, 65535)),
        ws_port=r.get("FTL_WS_PORT", 8081, _int_range(0, 65535)),
        flusher_port=r.get("FTL_FLUSHER_PORT", 8082, _int_range(0, 65535)),
        log_format=r.get("FTL_LOG_FORMAT", default_log, _choice(LOG_FORMATS)),
        jwt_keys=r.get("FTL_JWT_KEYS", (), _jwt_keys),
        access_ttl_s=r.get("FTL_ACCESS_TTL_S", 900, _int_range(10, 86_400)),
        refresh_ttl_s=r.get("FTL_REFRESH_TTL_S", 604_800, _int_range(60, 90 * 86_400)),
        google_client_ids=r.get("FTL_GOOGLE_CLIENT_ID", (), _csv),
        google_jwks_url=r.get(
            "FTL_GOOGLE_JWKS_URL",
            "https://www.googleapis.com/oauth2/v3/certs",
            _url(("http", "https")),
        ),
        sportmonks_url=r.get(
            "FTL_SPORTMONKS_URL",
            "https://api.sportmonks.com/v3/football",
            _url(("http", "https")),
        ),
        sportmonks_token=r.get("FTL_SPORTMONKS_TOKEN", None, str.strip),
        sportmonks_calls_per_hour=r.get("FTL_SPORTMONKS_CALLS_PER_HOUR", 2000, _int_range(60, 1_000_000)),
        feed=r.get("FTL_FEED", default_feed, _feed),
        start_balance=r.get("FTL_START_BALANCE", 1_000_000, _int_range(0, 10**12)),
        drain_s=r.get("FTL_DRAIN_S", 1.0, _float_range(0.0, 60.0)),
        http_idle_s=r.get("FTL_HTTP_IDLE_S", 20.0, _float_range(0.1, 3600.0)),
        api_server=r.get("FTL_API_SERVER", "granian", _choice(("granian", "uvicorn", "hypercorn"))),
        redis_prefix=r.get("FTL_REDIS_PREFIX", "", _prefix),
        fee_bps=r.get("FTL_FEE_BPS", 10, _int_range(0, 1000)),
        mm_bps=r.get("FTL_MM_BPS", 500, _int_range(0, 10_000)),
        replay_speed=r.get("FTL_REPLAY_SPEED", 10.0, _float_range(0.1, 1000.0)),
        mtm_interval_s=r.get("FTL_MTM_INTERVAL_S", 1.0, _float_range(0.05, 3600.0)),
        snapshot_interval_s=r.get("FTL_SNAPSHOT_INTERVAL_S", 300.0, _float_range(0.0, 86_400.0)),
        snapshot_top=r.get("FTL_SNAPSHOT_TOP", 1000, _int_range(1, 1_000_000)),
        leaderboard_epoch_ms=r.get("FTL_LEADERBOARD_EPOCH_MS", 1_780_272_000_000, _int_range(0, 2**53 - 1)),
        leaderboard_slot_ms=r.get("FTL_LEADERBOARD_SLOT_MS", 4000, _int_range(1, 86_400_000)),
        ledger_batch_max=r.get("FTL_LEDGER_BATCH_MAX", 64, _int_range(1, 10_000)),
        ledger_batch_wait_ms=r.get("FTL_LEDGER_BATCH_WAIT_MS", 1.0, _float_range(0.0, 1000.0)),
        ledger_batches_in_flight=r.get("FTL_LEDGER_BATCHES_IN_FLIGHT", 2, _int_range(1, 64)),
        ledger_write_timeout_s=r.get("FTL_LEDGER_WRITE_TIMEOUT_S", 2.0, _float_range(0.0, 60.0)),
        flusher_max_tries=r.get("FTL_FLUSHER_MAX_TRIES", 5, _int_range(1, 1000)),
        event_loop=r.get("FTL_EVENT_LOOP", "uvloop", _choice(("uvloop", "asyncio"))),
        seed_demo=r.get("FTL_SEED_DEMO", not production, _bool),
        ws_workers=r.get("FTL_WS_WORKERS", 2 if production else 1, _int_range(1, 16)),
        max_index_age_s=r.get("FTL_MAX_INDEX_AGE_S", 0, _int_range(0, 86_400)),
        log_level=r.get("FTL_LOG_LEVEL", "info", _choice(("debug", "info", "warning", "error"))),
    )
    if overrides:
        settings = settings.replace(**overrides)
    if settings.production:
        if settings.redis_url is None:
            r.problems.append("FTL_REDIS_URL is required when FTL_ENV=production")
        if settings.database_url is None:
            r.problems.append("FTL_DATABASE_URL is required when FTL_ENV=production")
        if not settings.jwt_keys:
            r.problems.append("FTL_JWT_KEYS is required when FTL_ENV=production")
    if r.problems:
        raise ConfigError(r.problems)
    return settings
