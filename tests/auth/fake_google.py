"""A fake Google on loopback: a real HTTP server serving a JWKS of test RSA keys, and an ID token minter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "ftl-test.apps.googleusercontent.com"
ISSUER = "https://accounts.google.com"
JWKS_PATH = "/oauth2/v3/certs"


@cache
def rsa_key(kid: str) -> RSAKey:
    """A 2048-bit RSA key per kid, generated once per test session."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


class FakeGoogle:
    """Serves ``GET /oauth2/v3/certs``; keys can be published, rotated, and the endpoint taken down."""

    def __init__(self, max_age: int = 3600) -> None:
        self.max_age = max_age
        self.published: list[str] = []
        self.status = 200
        self.hits = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-google", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{JWKS_PATH}"

    def start(self) -> FakeGoogle:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def stop_unstarted(self) -> None:
        """Release the port of a server that was never started (its URL then refuses connections)."""
        self._server.server_close()

    def publish(self, *kids: str) -> None:
        """Serve exactly these keys from now on (a rotation)."""
        self.published = list(kids)

    def go_down(self, status: int = 503) -> None:
        self.status = status

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**rsa_key(kid).as_dict(private=False), "alg": "RS256"} for kid in self.published]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with fake._lock:
                    fake.hits += 1
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                if fake.status != 200:
                    self.send_error(fake.status)
                    return
                body = json.dumps(fake.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Cache-Control", f"public, max-age={fake.max_age}, must-revalidate")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def claims(**overrides: Any) -> dict[str, Any]:
    """Good ID token claims of a new user; an override of None drops that claim."""
    now = int(time.time())
    sub = overrides.get("sub") or str(10**15 + secrets.randbelow(10**15))
    base: dict[str, Any] = {
        "iss": ISSUER,
        "azp": CLIENT_ID,
        "aud": CLIENT_ID,
        "sub": sub,
        "email": f"ada-{sub}@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "iat": now,
        "exp": now + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(kid: str, header: dict[str, Any] | None = None, **overrides: Any) -> str:
    """An ID token signed (RS256) by the test key ``kid``."""
    head = {"alg": "RS256", "kid": kid, **(header or {})}
    return jwt.encode(head, claims(**overrides), rsa_key(kid), algorithms=[head["alg"]])


def mint_unsigned(kid: str, **overrides: Any) -> str:
    """``alg: none``: no signature at all."""
    return f"{b64json({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{b64json(claims(**overrides))}."


def mint_hs256_with_public_key(kid: str, **overrides: Any) -> str:
    """The algorithm-confusion attack: HMAC keyed with the PEM of the (public) RSA key."""
    public = rsa_key(kid).public_key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64json({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{b64json(claims(**overrides))}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def tamper(token: str, **changes: Any) -> str:
    """The token with its payload changed and its signature kept."""
    head, payload, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    return f"{head}.{b64json(data)}.{sig}"
