"""Where the shipped ``sql/`` and ``lua/`` folders are, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / f"_{name}", _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name}/ folder ships with ftl but was not found near {_PACKAGE}")


def sql_dir() -> Path:
    return _find("sql")


def lua_dir() -> Path:
    return _find("lua")
