"""The web client's routes (``/``, ``/static``, ``/api/config``) and its error-message table."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from starlette.applications import Starlette

from ftl.config import Settings
from ftl.persistence.trade_replies import CODES
from ftl.web.errors import EXCEPTION_HANDLERS
from ftl.web.static_routes import STATIC_DIR, static_routes

ROOT = Path(__file__).resolve().parents[2]


async def _get(settings: Settings, path: str) -> httpx.Response:
    app = Starlette(routes=static_routes(settings), exception_handlers=EXCEPTION_HANDLERS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_index_is_the_page() -> None:
    resp = await _get(Settings(), "/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="static/app.js">' in resp.text


async def test_modules_are_served_as_javascript() -> None:
    for asset in ("/static/app.js", "/static/screens/portfolio.js", "/static/vendor/msgpack/index.mjs"):
        resp = await _get(Settings(), asset)
        assert resp.status_code == 200, asset
        assert resp.headers["content-type"].startswith("text/javascript"), asset
        assert resp.headers["cache-control"] == "no-cache", asset


async def test_config_in_dev_offers_dev_login() -> None:
    resp = await _get(Settings(google_client_ids=("a.apps.googleusercontent.com", "b")), "/api/config")
    assert resp.json() == {"google_client_id": "a.apps.googleusercontent.com", "dev_login": True}
    assert resp.headers["cache-control"] == "no-store"


async def test_config_in_production_hides_dev_login() -> None:
    resp = await _get(Settings(env="production"), "/api/config")
    assert resp.json() == {"google_client_id": None, "dev_login": False}


async def test_unknown_static_file_is_a_json_404() -> None:
    resp = await _get(Settings(), "/static/nope.js")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_vendored_msgpack_is_complete() -> None:
    """Every relative import of the vendored ESM build resolves to a vendored file."""
    vendor = STATIC_DIR / "vendor" / "msgpack"
    assert (vendor / "LICENSE").is_file() and (vendor / "VERSION").is_file()
    for module in vendor.rglob("*.mjs"):
        for target in re.findall(r'from "(\.[^"]+)"', module.read_text()):
            assert (module.parent / target).resolve().is_file(), f"{module}: {target}"


def test_every_module_import_resolves() -> None:
    for module in STATIC_DIR.rglob("*.js"):
        for target in re.findall(r'from "(\.[^"]+)"', module.read_text()):
            assert (module.parent / target).resolve().is_file(), f"{module}: {target}"


def _server_error_codes() -> set[str]:
    """Every error code the Python code can answer with (Refused, token_error, validation)."""
    codes: set[str] = set(CODES)
    patterns = [
        r'Refused\(\s*Kind\.[A-Z_]+,\s*"([a-z_]+)"',
        r'token_error\(\s*"([a-z_]+)"',
        r'invalid\([^)]*,\s*"([a-z_]+)"\)',
        r'error_response\(\s*\d{3},\s*"([a-z_]+)"',
        r'"code":\s*"([a-z_]+)"',
    ]
    for path in (ROOT / "ftl").rglob("*.py"):
        text = path.read_text()
        for pattern in patterns:
            codes.update(re.findall(pattern, text, flags=re.S))
    codes.update({"invalid_field", "not_found", "method_not_allowed", "bad_request", "internal"})
    codes.discard("rating")  # a Sportmonks field name, not an error code
    return codes


def test_every_error_code_has_a_message() -> None:
    table = (STATIC_DIR / "errors.js").read_text()
    known = set(re.findall(r"^\s+([a-z_]+):\s", table, flags=re.M))
    missing = (_server_error_codes() | _auth_codes()) - known
    assert not missing, f"errors.js has no message for: {sorted(missing)}"


def _auth_codes() -> set[str]:
    text = (ROOT / "docs" / "auth.md").read_text()
    return set(re.findall(r"^\| \d{3} \| `([a-z_]+)`", text, flags=re.M))
