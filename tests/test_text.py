"""Integers and text in strings: ASCII digits only, storable text."""

from __future__ import annotations

import pytest

from ftl import text as v


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("0007", 7),
        ("9007199254740991", 2**53 - 1),
        ("²", None),  # U+00B2: str.isdigit() says yes, int() says no
        ("\u0665", None),  # Arabic-Indic five: int() would read it as 5
        ("\u0661\u0662", None),
        ("--5", None),
        ("-", None),
        ("", None),
        ("+5", None),
        (" 5", None),
        ("5 ", None),
        ("1_000", None),
        ("5\x00", None),
        ("0x10", None),
        ("1" * 5000, None),  # no int() of it (Python refuses more than 4300 digits: ValueError)
    ],
)
def test_ascii_int(raw: str, expected: int | None) -> None:
    assert v.ascii_int(raw, -(2**63), 2**63) == expected


def test_ascii_int_range_is_inclusive() -> None:
    assert v.ascii_int("1", 1, 5) == 1
    assert v.ascii_int("5", 1, 5) == 5
    assert v.ascii_int("0", 1, 5) is None
    assert v.ascii_int("6", 1, 5) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Arsenal", None),
        ("Ödegaard 🇳🇴", None),
        ("a\x00b", "must not contain NUL characters"),
        ("\ud800", "must be valid Unicode (no lone surrogates)"),
        ("x\udfff", "must be valid Unicode (no lone surrogates)"),
    ],
)
def test_text_problem(value: str, problem: str | None) -> None:
    assert v.text_problem(value) == problem
