"""The authenticated caller of a request: who they are and until when their token holds.

Pure (no web stack): the ws role imports it too.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUSE_USER_ID = 0
"""The house account (``users.is_house``): the counterparty of every trade; it never signs in."""
FIRST_USER_ID = 1
MAX_USER_ID = 2**63 - 1
"""``users.id`` is a PostgreSQL bigint."""
MAX_NUMERIC_DATE = 253_402_300_799
"""9999-12-31T23:59:59Z in seconds since the epoch: the latest date a token may carry."""


def is_user_id(value: int) -> bool:
    """A user who may sign in: not the house, within PostgreSQL's bigint."""
    return FIRST_USER_ID <= value <= MAX_USER_ID


@dataclass(frozen=True, slots=True)
class Principal:
    """A user proven by a valid access token."""

    user_id: int
    expires_at: int

    def __post_init__(self) -> None:
        if not is_user_id(self.user_id):
            raise ValueError(f"not a user id: {self.user_id}")
        if not 0 <= self.expires_at <= MAX_NUMERIC_DATE:
            raise ValueError(f"not an expiry date: {self.expires_at}")
