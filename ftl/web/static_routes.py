"""The web client: static files at ``/``, ``/static/*`` and the client's ``GET /api/config``.

The client is plain ES modules (no build step); ``scripts/vendor_web.sh`` vendors its only
dependency (``@msgpack/msgpack``) under ``static/vendor/``. See ``docs/web.md``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ftl.config import Settings
from ftl.web.replies import ClientConfig, StructResponse

STATIC_DIR = Path(__file__).parent / "static"

# Module scripts must be served as JavaScript; some systems' mime tables lack ``.mjs``.
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")


class RevalidatedStaticFiles(StaticFiles):
    """Static files a browser revalidates on every load (ETag → 304): without a build step the
    URLs carry no content hash, so a cached module must never outlive a deploy."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def client_config(settings: Settings) -> ClientConfig:
    """What the page needs to know before sign-in (nothing secret)."""
    return ClientConfig(
        google_client_id=settings.google_client_ids[0] if settings.google_client_ids else None,
        dev_login=not settings.production,
    )


def static_routes(settings: Settings) -> list[BaseRoute]:
    """``/`` (the page), ``/static`` (its modules and styles) and ``/api/config``."""
    config = client_config(settings)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def get_config(request: Request) -> Response:
        return StructResponse(config, headers={"Cache-Control": "no-store"})

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/api/config", get_config, methods=["GET"]),
        Mount("/static", app=RevalidatedStaticFiles(directory=STATIC_DIR), name="static"),
    ]
