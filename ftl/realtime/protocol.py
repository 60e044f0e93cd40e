"""The /ws wire protocol: MessagePack messages, limits and close codes; pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

WIRE_LIMIT = 95
"""Largest PRICE_UPDATE frame on the wire, WebSocket header included (bytes)."""
MAX_CLIENT_FRAME = 8192
"""Largest frame a client may send; a bigger one closes the socket with 1009."""
MAX_IDS_PER_MESSAGE = 200
"""Most instrument ids one subscribe/unsubscribe may carry."""
MAX_SUBSCRIPTIONS = 200
"""Most instruments one socket may be subscribed to at once."""
MAX_INSTRUMENT_ID = 2**31 - 1
MAX_TOKEN_LEN = 4096
AUTH_TIMEOUT_S = 5.0
"""Without a Bearer header, the first ``auth`` message must arrive within this many seconds."""
MAX_ERRORS = 20
"""A socket that sent this many bad messages is closed with 1008."""


class Close(IntEnum):
    """Close codes the server sends (docs/protocol.md)."""

    GOING_AWAY = 1001  # server shutting down: reconnect to another replica
    PROTOCOL_ERROR = 1002  # a frame with RSV bits set (no extension is negotiated)
    UNSUPPORTED_DATA = 1003  # a TEXT frame: every message is a binary MessagePack map
    POLICY_VIOLATION = 1008  # too many bad messages
    MESSAGE_TOO_BIG = 1009  # a client frame above MAX_CLIENT_FRAME
    UNAUTHORIZED = 4001  # no valid auth within AUTH_TIMEOUT_S, a message before auth, or a bad token
    TOKEN_EXPIRED = 4002  # the access token expired and no fresh ``auth`` arrived in time
    PONG_TIMEOUT = 4003  # no pong to the server's ping within the pong timeout
    SLOW_CONSUMER = 4008  # the client did not read: its buffer stayed full too long


# --- client -> server -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Invalid:
    """A message the server answers with ``ERROR`` ``code``."""

    code: str
    message: str


Command = Auth | Subscribe | Unsubscribe | Ping | Invalid

PING = Ping()


def _ids(value: object) -> tuple[int, ...] | Invalid:
    if not isinstance(value, list | tuple) or not value:
        return Invalid("bad_ids", "ids must be a non-empty array of instrument ids")
    if len(value) > MAX_IDS_PER_MESSAGE:
        return Invalid("too_many_ids", f"at most {MAX_IDS_PER_MESSAGE} ids per message")
    out: list[int] = []
    for item in value:
        if type(item) is not int or not 1 <= item <= MAX_INSTRUMENT_ID:
            return Invalid("bad_ids", "every id must be a positive integer instrument id")
        out.append(item)
    return tuple(dict.fromkeys(out))


def decode_client(data: bytes) -> Command:
    """Parse one client frame; never raises: anything wrong becomes :class:`Invalid`."""
    try:
        msg = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_TOKEN_LEN,
            max_bin_len=0,
            max_array_len=MAX_CLIENT_FRAME,
            max_map_len=16,
            max_ext_len=0,
        )
    except Exception:
        return Invalid("bad_message", "the frame is not one MessagePack value")
    if not isinstance(msg, dict):
        return Invalid("bad_message", "the frame must be a MessagePack map")
    op = msg.get("op")
    if op == "subscribe" or op == "unsubscribe":
        ids = _ids(msg.get("ids"))
        if isinstance(ids, Invalid):
            return ids
        return Subscribe(ids) if op == "subscribe" else Unsubscribe(ids)
    if op == "ping":
        return PING
    if op == "auth":
        token = msg.get("token")
        if not isinstance(token, str) or not token:
            return Invalid("bad_token", "auth needs a token string")
        return Auth(token)
    return Invalid("unknown_op", "op must be auth, subscribe, unsubscribe or ping")


# --- server -> client -------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """A complete unmasked binary WebSocket frame (FIN set) around ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x82, n)) + payload
    if n < 65536:
        return bytes((0x82, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x82, 127)) + n.to_bytes(8, "big") + payload


def _pack(message: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def price_update(
    instrument_id: int,
    price: int,
    seq: int,
    ts: int,
    *,
    index: int | None = None,
    skew: int | None = None,
    snapshot: bool = False,
) -> bytes:
    """PRICE_UPDATE payload (not yet framed)."""
    msg: dict[str, Any] = {"type": "PRICE_UPDATE", "id": instrument_id, "price": price, "seq": seq}
    if index is not None:
        msg["index"] = index
    if skew is not None:
        msg["skew"] = skew
    msg["ts"] = ts
    if snapshot:
        msg["snap"] = True
    return _pack(msg)


def auth_ok(user_id: int, expires_at: int) -> bytes:
    return frame(_pack({"type": "AUTH_OK", "user_id": user_id, "expires_at": expires_at}))


def error(code: str, message: str = "", ids: tuple[int, ...] | list[int] = ()) -> bytes:
    msg: dict[str, Any] = {"type": "ERROR", "code": code}
    if message:
        msg["message"] = message
    if ids:
        msg["ids"] = list(ids)
    return frame(_pack(msg))


PONG = frame(_pack({"type": "PONG"}))


@dataclass(frozen=True, slots=True)
class Update:
    """One PRICE_UPDATE from Redis, framed once for every subscriber."""

    instrument_id: int
    seq: int
    ts: int
    frame: bytes


def _int(value: object) -> int | None:
    return value if type(value) is int else None


def parse_update(payload: bytes) -> Update | None:
    """Validate a PRICE_UPDATE published by the Lua scripts; forward its bytes when they fit.

    Returns None for anything that is not a well-formed PRICE_UPDATE map.
    """
    try:
        msg = msgpack.unpackb(payload, raw=False, max_map_len=32, max_array_len=0, max_str_len=64)
    except Exception:
        return None
    if not isinstance(msg, dict) or msg.get("type") != "PRICE_UPDATE":
        return None
    iid, price, seq, ts = _int(msg.get("id")), _int(msg.get("price")), _int(msg.get("seq")), msg.get("ts")
    if iid is None or price is None or seq is None or not 1 <= iid <= MAX_INSTRUMENT_ID:
        return None
    ts_ms = _int(ts) or 0
    framed = frame(payload)
    if len(framed) > WIRE_LIMIT:
        framed = frame(
            price_update(iid, price, seq, ts_ms, index=_int(msg.get("index")), skew=_int(msg.get("skew")))
        )
        if len(framed) > WIRE_LIMIT:
            framed = frame(price_update(iid, price, seq, ts_ms))
    return Update(iid, seq, ts_ms, framed)


def decode_server(data: bytes) -> dict[str, Any]:
    """Decode a server payload (for clients and tests)."""
    msg = msgpack.unpackb(data, raw=False)
    if not isinstance(msg, dict):
        raise ValueError("server messages are maps")
    return msg
