"""The pure wire protocol: client message parsing, server encodings, the 95-byte wire limit."""

from __future__ import annotations

import msgpack
import pytest

from ftl.realtime import protocol
from ftl.realtime.protocol import Auth, Invalid, Ping, Subscribe, Unsubscribe, decode_client


def pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj)
    return data


def test_decodes_every_op() -> None:
    assert decode_client(pack({"op": "auth", "token": "t"})) == Auth("t")
    assert decode_client(pack({"op": "subscribe", "ids": [3, 1, 3]})) == Subscribe((3, 1))
    assert decode_client(pack({"op": "unsubscribe", "ids": [7]})) == Unsubscribe((7,))
    assert decode_client(pack({"op": "ping"})) == Ping()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xc1", "bad_message"),  # never used in MessagePack
        (b"\x92\x01", "bad_message"),  # truncated array
        (pack([1, 2]), "bad_message"),
        (pack({"op": "dance"}), "unknown_op"),
        (pack({"nop": 1}), "unknown_op"),
        (pack({"op": "subscribe", "ids": []}), "bad_ids"),
        (pack({"op": "subscribe", "ids": "1,2"}), "bad_ids"),
        (pack({"op": "subscribe", "ids": [1, True]}), "bad_ids"),
        (pack({"op": "subscribe", "ids": [1.5]}), "bad_ids"),
        (pack({"op": "subscribe", "ids": [0]}), "bad_ids"),
        (pack({"op": "subscribe", "ids": [2**31]}), "bad_ids"),
        (pack({"op": "subscribe", "ids": list(range(1, 501))}), "too_many_ids"),
        (pack({"op": "subscribe", "ids": list(range(1, 10_001))}), "bad_message"),
        (pack({"op": "auth", "token": 5}), "bad_token"),
        (pack({"op": "auth"}), "bad_token"),
        (pack({"op": "auth", "token": "x" * 5000}), "bad_message"),
        (pack({1: 2}), "bad_message"),
    ],
)
def test_bad_messages_become_invalid(data: bytes, code: str) -> None:
    result = decode_client(data)
    assert isinstance(result, Invalid)
    assert result.code == code


def test_frame_headers() -> None:
    assert protocol.frame(b"ab") == b"\x82\x02ab"
    assert protocol.frame(b"x" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert protocol.frame(b"x" * 70_000)[:10] == b"\x82\x7f" + (70_000).to_bytes(8, "big")


def test_price_update_worst_case_fits_the_wire_limit() -> None:
    payload = protocol.price_update(
        2**31 - 1, 2**31 - 1, 2**40, 2**45, index=2**31 - 1, skew=-(2**31), snapshot=True
    )
    assert len(protocol.frame(payload)) <= protocol.WIRE_LIMIT
    msg = protocol.decode_server(payload)
    assert msg["type"] == "PRICE_UPDATE"
    assert msg["snap"] is True


def test_parse_update_forwards_bytes_that_fit() -> None:
    payload = pack(
        {"type": "PRICE_UPDATE", "id": 12, "price": 1234, "index": 1200, "skew": -5, "seq": 9, "ts": 1}
    )
    update = protocol.parse_update(payload)
    assert update is not None
    assert update.frame == b"\x82" + bytes([len(payload)]) + payload
    assert (update.instrument_id, update.seq, update.ts) == (12, 9, 1)


def test_parse_update_reencodes_when_too_big() -> None:
    payload = pack({"type": "PRICE_UPDATE", "id": 12, "price": 1234, "seq": 9, "ts": 5, "junk": "x" * 60})
    update = protocol.parse_update(payload)
    assert update is not None
    assert len(update.frame) <= protocol.WIRE_LIMIT
    assert protocol.decode_server(update.frame[2:]) == {
        "type": "PRICE_UPDATE",
        "id": 12,
        "price": 1234,
        "seq": 9,
        "ts": 5,
    }


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",
        pack({"type": "OTHER", "id": 1, "price": 1, "seq": 1}),
        pack({"type": "PRICE_UPDATE", "id": "1", "price": 1, "seq": 1}),
        pack({"type": "PRICE_UPDATE", "id": 1, "seq": 1}),
        pack({"type": "PRICE_UPDATE", "id": 0, "price": 1, "seq": 1}),
    ],
)
def test_parse_update_rejects_garbage(payload: bytes) -> None:
    assert protocol.parse_update(payload) is None


def test_replies() -> None:
    assert protocol.decode_server(protocol.PONG[2:]) == {"type": "PONG"}
    assert protocol.decode_server(protocol.auth_ok(7, 99)[2:]) == {
        "type": "AUTH_OK",
        "user_id": 7,
        "expires_at": 99,
    }
    err = protocol.decode_server(protocol.error("bad_ids", "no", [1, 2])[2:])
    assert err == {"type": "ERROR", "code": "bad_ids", "message": "no", "ids": [1, 2]}
