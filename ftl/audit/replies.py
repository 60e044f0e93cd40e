"""Decoding Redis replies (bytes or str) into text and optional integers."""

from __future__ import annotations

from typing import Any


def as_text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def as_int(v: Any) -> int | None:
    return None if v is None or v == b"" or v == "" else int(v)
