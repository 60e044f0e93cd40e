"""End to end in headless Chromium: the web client against a real ``ftl dev`` (replay feed).

Debian's ``chromium`` package driven by Playwright for Python (``executable_path``: Playwright never
downloads a browser here). Skipped only when ``/usr/bin/chromium`` is absent. Screenshots go to
``test-output/web/``; ``UPDATE_SCREENSHOT=1`` also refreshes ``docs/screenshot.png`` (the README's).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FtlProcess, ftl_process, http_status, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUT = Path(__file__).resolve().parents[2] / "test-output" / "web"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
# Errors worth retrying: the replay halts a fixture's players for 8 s after a goal, and the
# price can move past the slippage tolerance between quote and order.
TRANSIENT = re.compile(r"paused|stale|slippage tolerance|restarting", re.IGNORECASE)


@pytest.fixture(scope="module")
def ftl_dev() -> Iterator[FtlProcess]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)")
    # A 20 s access token: the page must refresh it (and re-auth its socket) during the test.
    env = {"FTL_FEED": "replay:bundled", "FTL_REPLAY_SPEED": "60", "FTL_ACCESS_TTL_S": "20"}
    with ftl_process(["dev"], env=env) as proc:
        try:
            wait_for(lambda: http_status(proc.url("api", "/readyz")) == 200, 90, "api /readyz")
            wait_for(lambda: http_status(proc.url("ws", "/readyz")) == 200, 30, "ws /readyz")
        except AssertionError:
            print(proc.log()[-4000:])
            raise
        yield proc


@pytest.fixture(scope="module")
def browser(ftl_dev: FtlProcess) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a setup error, not a reason to skip
        pytest.fail(
            "playwright is not installed: add `playwright` to the dev extras (never `playwright install`)"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def shot(page: Any, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / name), full_page=True)


def settle_message(page: Any, selector: str, timeout_ms: int = 30_000) -> tuple[str, str]:
    """Wait for a status line to finish (ok or error) and return (kind, text)."""
    page.wait_for_selector(f"{selector}[data-kind=ok], {selector}[data-kind=error]", timeout=timeout_ms)
    return page.get_attribute(selector, "data-kind") or "", page.inner_text(selector)


def test_play_in_the_browser(ftl_dev: FtlProcess, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    problems: list[str] = []
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # Refused requests (409 halted, 404 leaderboard) are logged by Chromium and shown by the page.
    page.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}")
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    expect.set_options(timeout=30_000)
    try:
        _play(page, ftl_dev, sockets)
    except Exception:
        shot(page, "failure.png")
        print(ftl_dev.log()[-4000:])
        raise
    finally:
        context.close()
    assert not problems, problems


def _play(page: Any, ftl: FtlProcess, sockets: list[str]) -> None:
    from playwright.sync_api import expect

    # The page is served by the api role; the ws role is on another (free) port of the same host.
    page.goto(ftl.url("api", f"/?ws_port={ftl.ports['ws']}"))

    # 1. Sign in with dev login.
    expect(page.get_by_role("heading", name="Sign in to FTL")).to_be_visible()
    shot(page, "01-sign-in.png")
    page.get_by_label("Email").fill("e2e@example.com")
    page.get_by_label("Display name").fill("E2E Player")
    page.get_by_label("District").fill("7")
    page.get_by_role("button", name="Sign in (dev)").click()
    expect(page.get_by_role("heading", name="Players")).to_be_visible()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#wallet")).to_contain_text("10,000.00")
    first_refresh_token = page.evaluate("window.ftl.session.get().refresh_token")
    assert sockets == [f"ws://127.0.0.1:{ftl.ports['ws']}/ws"]

    # 2. Prices move (replay feed through the ws role), coloured by direction.
    moved = page.locator("#instruments tbody tr[data-moved]").first
    expect(moved).to_be_visible(timeout=90_000)
    expect(moved.locator("td.change")).to_have_attribute("data-dir", re.compile("up|down"))
    shot(page, "02-instruments.png")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":  # the README's picture of the main screen
        page.screenshot(path=str(DOCS_SCREENSHOT))

    # Search by team and position.
    page.get_by_label("Team", exact=True).select_option("Mexico")
    page.get_by_label("Position", exact=True).select_option("Defender")
    rows = page.locator("#instruments tbody tr")
    expect(rows.first).to_be_visible()
    for cell in page.locator("#instruments tbody td[data-label=Team]").all_inner_texts():
        assert cell == "Mexico"
    page.get_by_label("Team", exact=True).select_option("")
    page.get_by_label("Position", exact=True).select_option("")
    moved = page.locator("#instruments tbody tr[data-moved]").first
    expect(moved).to_be_visible(timeout=60_000)

    # 3. Instrument view: chart from /ticks, live price, quote.
    name = moved.locator("a").inner_text()
    moved.locator("a").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.locator("#price-chart path.chart-line")).to_have_count(1)
    page.get_by_label("Quantity (units)").fill("20")
    page.get_by_label("Leverage").select_option("2")
    page.get_by_label("Slippage tolerance").select_option("200")
    expect(page.locator("#q-price")).to_have_text(re.compile(r"^\d[\d,]*\.\d\d$"))
    expect(page.locator("#q-fee")).to_have_text(re.compile(r"^\d[\d,]*\.\d\d$"))
    expect(page.locator("#q-margin")).to_have_text(re.compile(r"^\d[\d,]*\.\d\d$"))
    expect(page.locator("#t-submit")).to_contain_text(re.compile(r"Open long 20 \u00d7|Trading paused"))
    shot(page, "03-instrument.png")

    # 4. Open a long position (retrying while the fixture is halted after a goal).
    deadline = time.monotonic() + 120
    while True:
        submit = page.locator("#t-submit")
        expect(submit).to_be_enabled(timeout=60_000)
        submit.click()
        kind, text = settle_message(page, "#trade-msg")
        if kind == "ok":
            break
        assert TRANSIENT.search(text), f"opening failed: {text}"
        assert time.monotonic() < deadline, f"could not open a position: {text}"
    assert name in text
    expect(page.locator("#wallet")).not_to_contain_text("10,000.00")

    # 5. Portfolio: the position with live unrealised PnL.
    page.get_by_role("link", name="See it in your portfolio").click()
    expect(page.get_by_role("heading", name="Portfolio")).to_be_visible()
    row = page.locator("#positions-table tbody tr").first
    expect(row.get_by_role("link", name=name)).to_be_visible()
    pnl = row.locator("td.pnl")
    first = pnl.get_attribute("data-pnl")
    assert first is not None
    page.wait_for_function(
        "([el, v]) => el.dataset.pnl !== v", arg=[pnl.element_handle(), first], timeout=90_000
    )
    expect(page.locator("#w-equity")).to_have_text(re.compile(r"^\d[\d,]*\.\d\d$"))
    shot(page, "04-portfolio.png")

    # Phone-sized screen: the same portfolio as cards.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(row.get_by_role("button", name=re.compile("^Close long position"))).to_be_visible()
    shot(page, "05-portfolio-phone.png")
    page.set_viewport_size({"width": 1280, "height": 860})

    # 6. Close it (retrying while halted or when the price jumps past the tolerance).
    deadline = time.monotonic() + 120
    while True:
        close = page.get_by_role("button", name=re.compile("^Close long position"))
        expect(close).to_be_enabled(timeout=60_000)
        close.click()
        kind, text = settle_message(page, "#portfolio-msg")
        if kind == "ok":
            break
        assert TRANSIENT.search(text), f"closing failed: {text}"
        assert time.monotonic() < deadline, f"could not close the position: {text}"
    assert "realised PnL" in text
    expect(page.locator("#no-positions")).to_be_visible()
    shot(page, "06-closed.png")

    # 7. Leaderboard, overall and district (or its placeholder while the server has none).
    page.get_by_role("link", name="Leaderboard").click()
    expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible()
    expect(page.locator("#lb-me, #lb-unavailable")).to_be_visible()
    if page.locator("#lb-me").count():
        expect(page.locator("#lb-me")).to_contain_text("Your rank: #")
    shot(page, "07-leaderboard.png")
    page.get_by_role("tab", name="My district").click()
    expect(page.locator("#lb-me, #lb-unavailable")).to_be_visible()
    shot(page, "08-leaderboard-district.png")

    # 8. The access token (20 s here) was refreshed before expiry, and the socket re-authenticated
    #    in place: still live, still the one socket.
    page.wait_for_function(
        "t => window.ftl.session.get() && window.ftl.session.get().refresh_token !== t",
        arg=first_refresh_token,
        timeout=30_000,
    )
    page.wait_for_function(
        "t => window.ftl.session.get().expires_at > Date.now() + 5000", arg=None, timeout=30_000
    )
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert len(sockets) == 1, sockets

    # 9. A dropped socket (here: closed as if the server timed it out) reconnects with backoff,
    #    authenticates and subscribes again: prices keep coming on the new socket.
    page.get_by_role("link", name="Players").click()
    expect(page.locator("#instruments tbody tr").first).to_be_visible()
    page.evaluate(
        """() => {
            window.__old = window.ftl.prices.ws;
            window.__updates = 0;
            window.ftl.prices.onPrice(() => { window.__updates += 1; });
            window.__old.close(4003);
        }"""
    )
    page.wait_for_function(
        "() => window.ftl.prices.ws !== window.__old && window.ftl.prices.state === 'live'",
        timeout=30_000,
    )
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    page.wait_for_function("() => window.__updates > 0", timeout=60_000)
    assert len(sockets) == 2, sockets


def test_api_docs_render_in_the_browser(ftl_dev: FtlProcess, browser: Any) -> None:
    """/api/docs: Swagger UI, served by the api itself, lists the generated document's operations
    and its requests stay on this origin (no CDN)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    problems: list[str] = []
    elsewhere: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    origin = ftl_dev.url("api", "")
    page.on("request", lambda r: None if r.url.startswith(origin) else elsewhere.append(r.url))
    try:
        page.goto(ftl_dev.url("api", "/api/docs"))
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
        summaries = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/api/positions/open" in s for s in summaries), summaries
        shot(page, "api-docs.png")
    finally:
        context.close()
    assert not problems, problems
    assert not [u for u in elsewhere if not u.startswith("data:")], elsewhere
