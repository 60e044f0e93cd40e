"""``/api/docs``: the interactive API docs page."""

from __future__ import annotations

import html

from ftl.web.openapi import ENDPOINTS


def docs_page() -> str:
    """``/api/docs``: Swagger UI (vendored under ``static/vendor/swagger-ui``, no CDN) on
    ``/api/openapi.json``; without JavaScript, a table of the endpoints."""
    rows = []
    for e in ENDPOINTS:
        rows.append(
            f"<tr><td><code>{e.method.upper()} {html.escape(e.path)}</code></td>"
            f"<td>{html.escape(e.summary)}</td><td>{'Bearer' if e.auth else '-'}</td>"
            f"<td>{e.status}</td><td>{html.escape(', '.join(e.codes))}</td></tr>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>FTL API</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        "<link rel=stylesheet href=/static/vendor/swagger-ui/swagger-ui.css></head><body>"
        "<div id=docs></div><noscript><style>body{font-family:system-ui;margin:2rem}td,th"
        "{padding:.3rem .6rem;border-bottom:1px solid #ccc;text-align:left;vertical-align:top}"
        "</style><h1>FTL API</h1><p>Money and prices are integer cents. Errors are "
        '<code>{"error": {"code", "message"}}</code>. Machine-readable: '
        "<a href=/api/openapi.json>/api/openapi.json</a>.</p><table><tr><th>endpoint</th>"
        "<th>does</th><th>auth</th><th>success</th><th>error codes</th></tr>"
        + "".join(rows)
        + "</table></noscript>"
        "<script src=/static/vendor/swagger-ui/swagger-ui-bundle.js></script>"
        "<script src=/static/api-docs.js></script></body></html>"
    )
