"""The request hash of a trade, as the trade scripts compute it (``redis.sha1hex`` of the
canonical arguments joined by ``|``): an idempotency key reused with another body is a conflict.
"""

from __future__ import annotations

import hashlib


def _sha1(*parts: object) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode(), usedforsecurity=False).hexdigest()


def open_hash(
    user_id: int, instrument_id: int, side: str, qty: int, leverage: int, acceptable_price: int
) -> str:
    """position_open.lua: sha1('open|user|instrument|side|qty|leverage|acceptable')."""
    return _sha1("open", user_id, instrument_id, side, qty, leverage, acceptable_price)


def close_hash(user_id: int, position_id: int, instrument_id: int, qty: int, acceptable_price: int) -> str:
    """position_close.lua: sha1('close|user|position|instrument|qty (0 = all)|acceptable')."""
    return _sha1("close", user_id, position_id, instrument_id, qty, acceptable_price)
