"""The reference route of scripts/bench_servers.py: a starlette handler that decodes the trade body
into its declared type and answers, no I/O, on the chosen HTTP server. Not part of the product.

    python -m scripts.bench_reference --server hypercorn|uvicorn|granian --port 8090
"""

from __future__ import annotations

import argparse

import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ftl.web import bodies, decode
from ftl.web.replies import Quote, StructResponse
from ftl.web.server import AsgiServer


async def ref(request: Request) -> Response:
    body = await decode.body(request, bodies.OpenPosition)
    return StructResponse(Quote(body.acceptable_price, body.qty, 0, 0), status_code=201)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="hypercorn", choices=("hypercorn", "uvicorn", "granian"))
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    app = Starlette(routes=[Route("/ref", ref, methods=["POST"]), Route("/healthz", healthz)])
    server = AsgiServer(app, "127.0.0.1", args.port, "reference", kind=args.server)
    uvloop.run(server.run())


if __name__ == "__main__":
    main()
