"""What the modules of one process share: settings, health, server URLs and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ftl.config import Settings
from ftl.health import Health

if TYPE_CHECKING:
    from ftl.persistence.stores import Stores


@dataclass
class Runtime:
    settings: Settings
    health: Health = field(default_factory=Health)
    auto_migrate: bool = False
    redis_url: str | None = None
    database_url: str | None = None
    stores_: Stores | None = None

    def __post_init__(self) -> None:
        self.redis_url = self.redis_url or self.settings.redis_url
        self.database_url = self.database_url or self.settings.database_url

    @property
    def stores(self) -> Stores:
        if self.stores_ is None:
            raise RuntimeError("stores are not open yet")
        return self.stores_
