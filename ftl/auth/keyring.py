"""Our JWT signing keys: ``FTL_JWT_KEYS`` (newest signs, all verify), or a generated dev key."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from joserfc.jwk import OctKey

from ftl.config import Settings

DEV_KEY_FILE = "dev-jwt-key"
DEV_KID = "dev"


@dataclass(frozen=True)
class KeyRing:
    """HS256 keys by kid; the first one signs."""

    signing_kid: str
    keys: dict[str, OctKey]

    @classmethod
    def of(cls, pairs: tuple[tuple[str, str], ...]) -> KeyRing:
        if not pairs:
            raise ValueError("at least one JWT key is needed")
        keys = {kid: OctKey.import_key(secret) for kid, secret in pairs}
        return cls(pairs[0][0], keys)

    @property
    def signing_key(self) -> OctKey:
        return self.keys[self.signing_kid]

    def get(self, kid: str) -> OctKey | None:
        return self.keys.get(kid)


def load_keyring(settings: Settings) -> KeyRing:
    """The configured keys; without any (never in production), a per-data-dir dev key."""
    if settings.jwt_keys:
        return KeyRing.of(settings.jwt_keys)
    if settings.production:
        raise RuntimeError("FTL_JWT_KEYS is required when FTL_ENV=production")
    return KeyRing.of(((DEV_KID, dev_secret(settings.data_dir)),))


def dev_secret(data_dir: Path) -> str:
    """Read ``data_dir/dev-jwt-key``, creating it (0600, atomically) on first use."""
    path = data_dir / DEV_KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{DEV_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
        # link() fails if another process won the race: then everyone reads the winner's key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable key; delete it to generate a new one")
    return secret
