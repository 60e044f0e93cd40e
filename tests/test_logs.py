"""Structured logs: JSON with the role on every line, or readable console lines."""

from __future__ import annotations

import json

import pytest

from ftl import logs


def test_json_lines_carry_the_role(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "info", role="flusher")
    logs.get("t").info("hello", n=3)
    import logging

    logging.getLogger("hypercorn.error").warning("from stdlib")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert lines[0]["event"] == "hello" and lines[0]["n"] == 3
    assert all(line["role"] == "flusher" for line in lines)
    assert lines[1]["event"] == "from stdlib"


def test_console_format_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("console", "info", role="api")
    logs.get("t").info("hello")
    err = capsys.readouterr().err
    assert "hello" in err and "role=api" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])
