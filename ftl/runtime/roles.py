"""The whole system in one table: module → dependencies, role → modules (``all`` is their union)."""

from __future__ import annotations

# module name -> (modules it needs started first, where its service class lives)
MODULES: dict[str, tuple[tuple[str, ...], str]] = {
    "embedded": ((), "ftl.runtime.services:EmbeddedServers"),
    "stores": (("embedded",), "ftl.runtime.services:StoresService"),
    "prices": (("stores",), "ftl.runtime.services:PricesService"),
    "api": (("stores",), "ftl.runtime.web_services:ApiService"),
    "ws": (("stores",), "ftl.runtime.web_services:WsService"),
    "flusher": (("stores",), "ftl.runtime.services:FlusherService"),
}

ROLES: dict[str, tuple[str, ...]] = {
    "api": ("api", "prices"),
    "ws": ("ws",),
    "flusher": ("flusher",),
    "all": ("api", "prices", "ws", "flusher"),
}

DESCRIPTIONS: dict[str, str] = {
    "embedded": "embedded redis-server and PostgreSQL when FTL_REDIS_URL/FTL_DATABASE_URL are unset",
    "stores": "Redis client with every Lua script loaded; PostgreSQL pool; migration check",
    "prices": "price feed (Sportmonks or replay) polled by one replica: index moves, ticks",
    "api": "REST API and auth on FTL_API_PORT (8080)",
    "ws": "WebSocket fan-out of PRICE_UPDATE frames on FTL_WS_PORT (8081)",
    "flusher": "Redis to PostgreSQL flusher, sweeps and recovery; health on FTL_FLUSHER_PORT (8082)",
}


def resolve(role: str) -> list[str]:
    """Modules of ``role`` in start order (dependencies first)."""
    if role not in ROLES:
        raise KeyError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"dependency cycle: {' -> '.join((*path, name))}")
        if name in order:
            return
        for dep in MODULES[name][0]:
            visit(dep, (*path, name))
        order.append(name)

    for target in ROLES[role]:
        visit(target, ())
    return order


def describe() -> str:
    lines = []
    for role in ROLES:
        lines.append(f"{role}: {' -> '.join(resolve(role))}")
    lines.append("")
    for name, text in DESCRIPTIONS.items():
        lines.append(f"  {name:<9} {text}")
    return "\n".join(lines)
