"""The role table: dependency order, and the CLI that prints it."""

from __future__ import annotations

import pytest

from ftl.cli import main
from ftl.runtime import roles


def test_roles_resolve_dependencies_first() -> None:
    assert roles.resolve("api") == ["embedded", "stores", "api", "prices"]
    assert roles.resolve("flusher") == ["embedded", "stores", "flusher"]
    assert roles.resolve("all") == ["embedded", "stores", "api", "prices", "ws", "flusher"]


def test_unknown_role() -> None:
    with pytest.raises(KeyError):
        roles.resolve("worker")


def test_ftl_roles_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roles"]) == 0
    out = capsys.readouterr().out
    assert "all: embedded -> stores -> api -> prices -> ws -> flusher" in out
    assert "flusher: embedded -> stores -> flusher" in out


def test_help_explains_each_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "roles", "migrate", "dev"):
        assert command in out
