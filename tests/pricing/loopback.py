"""What the fake Sportmonks servers share: a threaded HTTP server on loopback whose every GET goes
to the fake's ``handle``, the scripted reply type, the record of what was asked, and the sending."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless ``raw``
    raw: bytes | None = None
    delay_s: float = 0.0  # hold the answer this long (a timeout for a client with a shorter one)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class LoopbackServer:
    """Serves on 127.0.0.1 (a free port) from a thread; subclasses answer in ``handle``."""

    def __init__(self) -> None:
        self._closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start_serving(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def send(self, req: BaseHTTPRequestHandler, reply: Reply) -> None:
        """Answer ``reply`` (after its delay, unless the server is stopping meanwhile)."""
        if reply.delay_s and self._closing.wait(reply.delay_s):
            return
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        try:
            req.send_response(reply.status)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(payload)))
            for k, v in reply.headers.items():
                req.send_header(k, v)
            req.end_headers()
            req.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass
