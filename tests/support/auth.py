"""The identity service as the tests see it: a test key pair, tokens minted with joserfc as the
edge contract says (docs/auth.md), and a small HTTP server in the test process serving the
public key as a JWKS and service tokens for client credentials.

The session's services trust `IDENTITY` (tests/conftest.py points `STRATA_JWKS_URL` at its
server), and the shared clients send `OPERATOR` by default.
"""

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

ISSUER = "http://127.0.0.1:8200"
"""The settings' default issuer: the services under test need no setting for it."""
AUDIENCE = "strata"


def new_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def public(key: ECKey) -> dict[str, Any]:
    return key.as_dict(private=False)


@dataclass
class Identity:
    """Signs tokens with `key`; `claims` of a token can be overridden one by one."""

    key: ECKey = field(default_factory=lambda: new_key("test-key-1"))
    issuer: str = ISSUER

    def token(
        self,
        subject: str = "test-operator",
        roles: Iterable[str] = ("operator",),
        scope: str = "",
        *,
        seconds: int = 300,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + seconds,
            "jti": str(uuid.uuid4()),
            "roles": list(roles),
            "scope": scope,
            **claims,
        }
        protected = {"alg": "ES256", "kid": self.key.kid, **(header or {})}
        return jwt.encode(protected, payload, self.key)

    def headers(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        return bearer(self.token(*args, **kwargs))

    def user(self, user_id: str) -> dict[str, str]:
        return self.headers(user_id, ["user"])

    def service(self, scope: str) -> dict[str, str]:
        return self.headers("svc-test", ["service"], scope)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SAGA_CLIENT = "fulfilment-saga"
SAGA_SCOPE = "payments:write shipping:write orders:write"
CLIENT_SECRET = "test-secret"
SERVICE_TOKEN_SECONDS = 300

IDENTITY = Identity()
OPERATOR = IDENTITY.headers(seconds=24 * 3600)
"""An operator's headers, valid for the whole session."""


class JwksServer:
    """`GET /jwks.json` on a free loopback port: the public halves of `keys`; `POST /token`: a
    service token of `identity` for client credentials (`SAGA_CLIENT`'s scopes, whatever the
    client, with `CLIENT_SECRET`). `down` makes it answer 503 (the identity service is out),
    `garbage` answer a JWKS that is no JWKS, and `stopped()` closes its port for a while (the
    identity service is not running: connections are refused); `fetches` counts the JWKS
    requests it answered."""

    def __init__(self, *keys: ECKey, identity: Identity = IDENTITY) -> None:
        self.keys = list(keys)
        self.identity = identity
        self.down = False
        self.garbage = False
        self.fetches = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread: threading.Thread | None = None
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/jwks.json"
        self.token_url = f"{self.base}/token"

    def service_token(self, authorization: str) -> dict[str, Any] | None:
        scheme, _, encoded = authorization.partition(" ")
        client, _, secret = base64.b64decode(encoded or "").decode().partition(":")
        if scheme != "Basic" or secret != CLIENT_SECRET:
            return None
        token = self.identity.token(client, ["service"], SAGA_SCOPE, seconds=SERVICE_TOKEN_SECONDS)
        return {"access_token": token, "token_type": "Bearer", "expires_in": SERVICE_TOKEN_SECONDS}

    def settings(self) -> dict[str, str]:
        """The environment of a service trusting this identity, with the saga's credentials."""
        return {
            "STRATA_JWKS_URL": self.url,
            "STRATA_SERVICE_TOKEN_URL": self.token_url,
            "STRATA_SERVICE_CLIENT_ID": SAGA_CLIENT,
            "STRATA_SERVICE_CLIENT_SECRET": CLIENT_SECRET,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                if server.down or self.path != "/jwks.json":
                    self.send_error(503 if server.down else 404)
                    return
                if server.garbage:
                    self._json({"keys": "none today"})
                    return
                self._json({"keys": [public(key) for key in server.keys]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.down or self.path != "/token":
                    self.send_error(503 if server.down else 404)
                    return
                answer = server.service_token(self.headers.get("Authorization", ""))
                if answer is None:
                    self.send_error(401)
                    return
                self._json(answer)

            def _json(self, document: object) -> None:
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    @contextmanager
    def serving(self) -> Iterator["JwksServer"]:
        self._start()
        try:
            yield self
        finally:
            self._stop()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Within the block nothing listens on the server's port; then it serves there again."""
        self._stop()
        try:
            yield
        finally:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
            self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def _stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
