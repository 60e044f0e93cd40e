"""Bodies decoded into their declared types: exact JSON media type, unique keys, one error code
per fault naming the field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ftl.errors import Refused
from ftl.web import bodies, decode
from ftl.web.errors import EXCEPTION_HANDLERS
from ftl.web.openapi import ENDPOINTS, document


@pytest.mark.parametrize(
    ("ctype", "ok"),
    [
        ("application/json", True),
        ("Application/JSON", True),
        ("application/json; charset=utf-8", True),
        ("application/json;charset=UTF-8", True),
        ("application/json ; charset=utf-8", True),
        ("", False),
        ("text/json", False),
        ("application/jsonx-evil", False),
        ("application/json-patch+json", False),
        ("text/plain; application/json", False),
        ("application/json; charset=latin-1", False),
        ("application/json; charset=utf-8; x=1", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_json_media_type(ctype: str, ok: bool) -> None:
    assert decode.is_json_media_type(ctype) is ok


def test_max_ms_is_the_last_millisecond_python_dates_hold() -> None:
    assert datetime.fromtimestamp(bodies.MAX_MS / 1000, tz=UTC).year == 9999
    with pytest.raises((ValueError, OverflowError)):
        datetime.fromtimestamp((bodies.MAX_MS + 1) / 1000, tz=UTC)


class Echo(bodies.Body):
    a: int | dict[str, int]
    b: bodies.Qty | None = None


async def echo(request: Request) -> JSONResponse:
    body = await decode.body(request, Echo)
    return JSONResponse(msgspec.to_builtins(body))


APP = Starlette(routes=[Route("/echo", echo, methods=["POST"])], exception_handlers=EXCEPTION_HANDLERS)


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("ctype", [None, "text/json", "application/jsonx-evil", "text/plain"])
async def test_anything_but_application_json_is_415(client: httpx.AsyncClient, ctype: str | None) -> None:
    headers = {} if ctype is None else {"Content-Type": ctype}
    resp = await client.post("/echo", content=b'{"a": 1}', headers=headers)
    assert resp.status_code == 415
    assert resp.json()["error"]["code"] == "unsupported_media_type"


async def test_duplicate_key_is_422_naming_it(client: httpx.AsyncClient) -> None:
    resp = await client.post("/echo", content=b'{"a": 1, "b": 2, "a": 3}', headers=JSON)
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "duplicate_key"
    assert resp.json()["error"]["field"] == "a"
    nested = await client.post("/echo", content=b'{"a": {"x": 1, "x": 1}}', headers=JSON)
    assert nested.json()["error"]["code"] == "duplicate_key"


async def test_error_echoing_a_lone_surrogate_key_is_still_json(client: httpx.AsyncClient) -> None:
    resp = await client.post("/echo", content=b'{"a": 1, "\\ud800": 2, "\\ud800": 3}', headers=JSON)
    assert resp.status_code == 422
    assert resp.json()["error"] == {
        "code": "duplicate_key",
        "message": "\ud800: given more than once in a JSON object",
        "field": "\ud800",
    }
    alone = await client.post("/echo", content=b'{"a": 1, "\\ud800": 2}', headers=JSON)
    assert (alone.status_code, alone.json()["error"]["code"]) == (422, "unknown_field")
    assert alone.json()["error"]["field"] == "\ud800"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (b'{"b": 1}', 422, "missing_field", "a"),
        (b'{"a": 1, "c": 1}', 422, "unknown_field", "c"),
        (b'{"a": "1"}', 422, "invalid_field", "a"),
        (b'{"a": true}', 422, "invalid_field", "a"),
        (b'{"a": 1.5}', 422, "invalid_field", "a"),
        (b'{"a": 1, "b": 99999999999999999999999}', 422, "out_of_range", "b"),
        (b'{"a": 1, "b": 0}', 422, "out_of_range", "b"),
        (b'{"a": 1, "a": 1}', 422, "duplicate_key", "a"),
        (b'{"a": 1, "\\u0061": 2}', 422, "duplicate_key", "a"),  # the same key spelled another way
        (b"[1]", 400, "malformed_json", None),
        (b'{"a": NaN}', 400, "malformed_json", None),
        (b'{"a": 1} x', 400, "malformed_json", None),
        (b"", 400, "malformed_json", None),
        (b"[" * 100_00, 400, "malformed_json", None),
    ],
)
async def test_each_fault_has_its_code_and_field(
    client: httpx.AsyncClient, body: bytes, status: int, code: str, field: str | None
) -> None:
    resp = await client.post("/echo", content=body, headers=JSON)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code
    assert resp.json()["error"].get("field") == field


async def test_an_integral_float_is_an_integer(client: httpx.AsyncClient) -> None:
    """JSON Schema holds 5.0 to be the integer 5; 5.5 is not one (above)."""
    resp = await client.post("/echo", content=b'{"a": 5.0, "b": 2}', headers=JSON)
    assert (resp.status_code, resp.json()) == (200, {"a": 5, "b": 2})


async def test_a_repeated_name_in_a_value_is_no_duplicate(client: httpx.AsyncClient) -> None:
    resp = await client.post("/echo", content=b'{"a": {"a": 1}}', headers=JSON)
    assert (resp.status_code, resp.json()) == (200, {"a": {"a": 1}, "b": None})


def test_out_of_range_names_the_bound() -> None:
    class Bounded(bodies.Body):
        qty: bodies.Qty

    with pytest.raises(Refused) as raised:
        decode.decode(b'{"qty": 0}', Bounded)
    assert (raised.value.code, raised.value.extra) == ("out_of_range", {"field": "qty"})


async def raw_post(app: Starlette, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, Any]:
    """POST ``body`` with exactly these header bytes (httpx re-encodes header values as UTF-8)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
        "root_path": "", "headers": headers, "server": ("api.test", 80), "client": ("127.0.0.1", 1),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(payload)


@pytest.mark.parametrize("length", ["²", "¹", "1" * 5000, "-1"])
async def test_odd_content_length_is_no_500(length: str, anyio_backend: str) -> None:
    """An odd declared length never reaches int(): a huge one is 413, the others are ignored."""
    headers = [(b"content-type", b"application/json"), (b"content-length", length.encode("latin-1"))]
    status, body = await raw_post(APP, headers, b'{"a": 1}')
    if length == "1" * 5000:
        assert (status, body["error"]["code"]) == (413, "body_too_large")
    else:
        assert (status, body) == (200, {"a": 1, "b": None})


async def test_a_client_that_hangs_up_mid_body_is_no_error(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half a body, then the client is gone: one info line (not an error with a traceback, which
    anyone could flood the log with) and no 500."""
    from ftl.web import errors

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
        "root_path": "", "headers": [(b"content-type", b"application/json")],
        "server": ("api.test", 80), "client": ("127.0.0.1", 1),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": b'{"a": ', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []
    logged: list[tuple[str, str]] = []

    class Recorder:
        def __getattr__(self, level: str) -> Any:
            return lambda event, **kw: logged.append((level, event))

    monkeypatch.setattr(errors, "log", Recorder())

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await APP(scope, receive, send)
    assert logged == [("info", "client disconnected mid-request")]
    assert next(m["status"] for m in sent if m["type"] == "http.response.start") == 400


def _request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query, "headers": []})


@pytest.mark.parametrize("kind", [e.query for e in ENDPOINTS if e.query is not None])
def test_every_integer_parameter_is_read_as_an_integer(kind: type[msgspec.Struct]) -> None:
    """Each integer of the document's query parameters is parsed from ASCII digits (a parameter
    read as text would be refused as 'got str')."""
    params = [
        p for e in ENDPOINTS if e.query is kind for p in document()["paths"][e.path][e.method]["parameters"]
    ]
    integers = {p["name"] for p in params if p["in"] == "query" and p["schema"].get("type") == "integer"}
    assert integers
    for name in integers:
        low = next(p["schema"]["minimum"] for p in params if p["name"] == name)
        others = b"&side=long" + (b"&qty=1" if name != "qty" else b"") if kind is bodies.QuoteQuery else b""
        got = decode.query(_request(f"{name}={low}".encode() + others), kind)
        assert getattr(got, name) == low


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (b"limit=%C2%B2", "invalid_field"),
        (b"limit=--5", "invalid_field"),
        (b"limit=", "invalid_field"),
        (b"limit=+5", "invalid_field"),
        (b"limit=0", "out_of_range"),
        (b"limit=1" + b"0" * 60, "out_of_range"),
        (b"team=a%00b", "invalid_field"),
        (b"team=" + b"x" * 101, "invalid_field"),
    ],
)
def test_query_faults(query: bytes, code: str) -> None:
    with pytest.raises(Refused) as raised:
        decode.query(_request(query), bodies.InstrumentsQuery)
    assert raised.value.code == code


def test_an_empty_text_parameter_is_absent() -> None:
    got = decode.query(_request(b"team=&limit=7"), bodies.InstrumentsQuery)
    assert (got.team, got.limit, got.cursor) == (None, 7, 0)
