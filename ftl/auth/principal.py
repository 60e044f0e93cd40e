"""The authenticated caller of a request: who they are and until when their token holds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """A user proven by a valid access token."""

    user_id: int
    expires_at: int
