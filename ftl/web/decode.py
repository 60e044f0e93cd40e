"""Requests decoded into their declared types (``ftl/web/bodies.py``); 4xx, never 500.

msgspec validates types, bounds, patterns and unknown fields in C; its refusal becomes the API's
error code (``missing_field``, ``unknown_field``, ``out_of_range``, ``invalid_field``) with the
field at fault. Two rules msgspec does not know are kept here: a key given twice in a JSON object
is refused (``duplicate_key``; msgspec keeps the last), and an integral number written as a float
(``5.0``) is an integer, as JSON Schema holds.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, TypeVar, cast

import msgspec
from starlette.requests import Request

from ftl.errors import Kind, Refused
from ftl.text import ascii_int, is_ascii_int
from ftl.web.bodies import MAX_BODY, MAX_ID

_T = TypeVar("_T", bound=msgspec.Struct)
JSON_TYPES = ("application/json",)
JSON_PARAMS = ("", "charset=utf-8")
_AT = re.compile(r" - at `\$\.?([^`\[]*)[^`]*`$")
_NAMED = re.compile(r"^Object (missing required|contains unknown) field `([^`]*)`")
_RANGE = re.compile(r"^Expected `(int|float)` [<>]=? ")


def invalid(field: str, message: str, code: str = "invalid_field") -> Refused:
    return Refused(Kind.INVALID, code, f"{field}: {message}", extra={"field": field})


def refusal(exc: msgspec.ValidationError) -> Refused:
    """The API's refusal for msgspec's ``ValidationError`` (one field at fault)."""
    text = str(exc)
    named = _NAMED.match(text)
    if named is not None:
        missing = named.group(1) == "missing required"
        code = "missing_field" if missing else "unknown_field"
        return Refused(Kind.INVALID, code, text, extra={"field": named.group(2)})
    at = _AT.search(text)
    if at is None or not at.group(1):  # the document itself: not an object
        return Refused(Kind.BAD_REQUEST, "malformed_json", "request body must be a JSON object")
    field, why = at.group(1), text[: at.start()]
    return invalid(field, why, "out_of_range" if _RANGE.match(why) else "invalid_field")


# --- JSON bodies -----------------------------------------------------------------------


def is_json_media_type(ctype: str) -> bool:
    """``application/json``, optionally ``; charset=utf-8`` (both case-insensitive)."""
    media, _, params = ctype.partition(";")
    if media.strip().lower() not in JSON_TYPES:
        return False
    return params.replace(" ", "").replace("\t", "").lower() in JSON_PARAMS


async def read_json(request: Request, max_body: int = MAX_BODY) -> bytes:
    """The raw body of a JSON request: 415 for another media type, 413 over ``max_body`` bytes."""
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise Refused(Kind.UNSUPPORTED, "unsupported_media_type", "send Content-Type: application/json")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and ascii_int(declared, 0, max_body) is None:
        raise Refused(Kind.TOO_LARGE, "body_too_large", f"request body over {max_body} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise Refused(Kind.TOO_LARGE, "body_too_large", f"request body over {max_body} bytes")
    return bytes(raw)


async def body(request: Request, kind: type[_T], max_body: int = MAX_BODY) -> _T:
    """The request's JSON body as ``kind``."""
    return decode(await read_json(request, max_body), kind)


def decode(raw: bytes, kind: type[_T]) -> _T:
    """``raw`` JSON as ``kind``: 400 ``malformed_json``, or 422 naming the field at fault."""
    if not _may_repeat_a_key(raw, kind):
        try:
            return cast(_T, _decoder(kind).decode(raw))
        except msgspec.ValidationError as exc:
            if "got `float`" not in str(exc):
                raise refusal(exc) from None
        except msgspec.DecodeError:
            pass  # perhaps a lone surrogate (valid JSON, no Unicode): the exact path says
    return _exactly(raw, kind)


def _exactly(raw: bytes, kind: type[_T]) -> _T:
    """The slow path, for bodies the fast one cannot judge: a key that may be given twice, an
    integral float (5.0 is the integer 5, as JSON Schema holds; 5.5 is not), a lone surrogate."""
    try:
        document = json.loads(raw, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        raise Refused(Kind.BAD_REQUEST, "malformed_json", "request body is not valid JSON") from None
    if isinstance(document, dict):
        for name, value in document.items():  # NUL is the declared patterns' business
            if not _is_unicode(name):
                raise Refused(Kind.INVALID, "unknown_field", f"unknown field {name}", extra={"field": name})
            if isinstance(value, str) and not _is_unicode(value):
                raise invalid(name, "must be valid Unicode (no lone surrogates)")
        document = {k: _integral(v) for k, v in document.items()}
    try:
        return msgspec.convert(document, kind)
    except msgspec.ValidationError as exc:
        raise refusal(exc) from None
    except UnicodeEncodeError:  # a lone surrogate deeper down
        raise Refused(Kind.BAD_REQUEST, "malformed_json", "text must be valid Unicode") from None


@cache
def _decoder(kind: type[_T]) -> msgspec.json.Decoder[_T]:
    return msgspec.json.Decoder(kind)


@cache
def _quoted_names(kind: type[msgspec.Struct]) -> tuple[bytes, ...]:
    return tuple(b'"' + name.encode() + b'"' for name in kind.__struct_fields__)


def _may_repeat_a_key(raw: bytes, kind: type[msgspec.Struct]) -> bool:
    """False when no key can be given twice: one object, no escapes (a key could be spelled
    another way) and no field name quoted twice. About 1 µs; a True is then checked exactly."""
    if b"\\" in raw or raw.count(b"{") > 1:
        return True
    for name in _quoted_names(kind):  # noqa: SIM110 (any() over a generator costs 2x here)
        if raw.count(name) > 1:
            return True
    return False


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Refused(
                Kind.INVALID,
                "duplicate_key",
                f"{key}: given more than once in a JSON object",
                extra={"field": key},
            )
        out[key] = value
    return out


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_ID:
        return int(value)
    return value


# --- query strings ---------------------------------------------------------------------


def query(request: Request, kind: type[_T]) -> _T:
    """The query string as ``kind``. Integers are ASCII digits only (an empty value is none);
    an empty text parameter is absent."""
    ints = _int_fields(kind)
    values: dict[str, Any] = {}
    for name in kind.__struct_fields__:
        raw = request.query_params.get(name)
        if raw is None or (raw == "" and name not in ints):
            continue
        if name in ints:
            if not is_ascii_int(raw):
                raise invalid(name, "must be an integer")
            number = ascii_int(raw, -(2**63), 2**63 - 1)
            if number is None:
                raise invalid(name, "is out of range", "out_of_range")
            values[name] = number
        else:
            values[name] = raw
    try:
        return msgspec.convert(values, kind)
    except msgspec.ValidationError as exc:
        raise refusal(exc) from None


@cache
def _int_fields(kind: type[msgspec.Struct]) -> frozenset[str]:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(f.name for f in info.fields if _is_int(f.type))


def _is_int(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_is_int(x) for x in t.types)
    if isinstance(t, msgspec.inspect.Metadata):
        return _is_int(t.type)
    return isinstance(t, msgspec.inspect.IntType)
