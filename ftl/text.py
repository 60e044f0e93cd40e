"""Integers and text in strings, checked the same way everywhere (pure: no I/O).

Integers in text (query and path parameters, headers, JWT claims) are ASCII only: ``str.isdigit``
and ``int()`` also accept '²', Arabic-Indic digits, '_', '+' and spaces. Text must not hold NUL
(PostgreSQL refuses it) or lone surrogates (they cannot be encoded as UTF-8).
"""

from __future__ import annotations

import re

_ASCII_INT = re.compile(r"-?[0-9]+")
_MAX_DIGITS = 40
"""Longer (significant) digit strings are out of any range here; never converted."""


def is_ascii_int(raw: str) -> bool:
    """An optional '-' then ASCII digits, nothing else (no '+', spaces, '_' or other digits)."""
    return _ASCII_INT.fullmatch(raw) is not None


def ascii_int(raw: str, lo: int, hi: int) -> int | None:
    """The integer ``raw`` spells (see :func:`is_ascii_int`) if it lies within ``lo..hi``; else None."""
    if not is_ascii_int(raw) or len(raw.lstrip("-").lstrip("0")) > _MAX_DIGITS:
        return None
    value = int(raw)
    return value if lo <= value <= hi else None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (NUL, a lone surrogate), or None if it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None
