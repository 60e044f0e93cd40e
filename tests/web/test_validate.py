"""Strict request parsing: ASCII-only integers, storable text, exact JSON media type, unique keys."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ftl.web import validate as v
from ftl.web.errors import EXCEPTION_HANDLERS


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
    assert v.is_json_media_type(ctype) is ok


def test_max_ms_is_the_last_millisecond_python_dates_hold() -> None:
    assert datetime.fromtimestamp(v.MAX_MS / 1000, tz=UTC).year == 9999
    with pytest.raises((ValueError, OverflowError)):
        datetime.fromtimestamp((v.MAX_MS + 1) / 1000, tz=UTC)


async def echo(request: Request) -> JSONResponse:
    body = await v.json_object(request, ("a", "b"), ("a",))
    return JSONResponse(body)


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
    resp = await client.post("/echo", content=b'{"a": 1, "\\ud800": 2}', headers=JSON)
    assert resp.status_code == 422
    assert resp.json()["error"] == {
        "code": "unknown_field",
        "message": "unknown field(s): \ud800",
        "field": "\ud800",
    }


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
        assert (status, body) == (200, {"a": 1})


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
