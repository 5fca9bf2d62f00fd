"""What the identity tests share: signing up, signing in, reading the JWKS, counting rows."""

import json
import uuid
from typing import Any

import httpx
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from identity.service import Identity

TABLES = (
    "identity_credentials",
    "identity_sign_ups",
    "identity_clients",
    "identity_refresh_tokens",
    "identity_signing_keys",
)
PASSWORD = "correct horse battery staple"


def sign_up(client: TestClient | httpx.Client, key: str | None = None, **body: str) -> Any:
    email = body.pop("email", f"ada-{uuid.uuid4().hex[:8]}@example.org")
    payload = {"name": "Ada Lovelace", "email": email, "password": PASSWORD, **body}
    headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
    # json.dumps escapes what UTF-8 cannot carry (a lone surrogate), as a client may send it
    return client.post("/sign-up", content=json.dumps(payload), headers=headers)


def sign_in(client: TestClient | httpx.Client, email: str, password: str = PASSWORD) -> Any:
    form = {"grant_type": "password", "username": email, "password": password}
    return client.post("/token", data=form)


def claims(client: TestClient | httpx.Client, token: str) -> dict[str, Any]:
    """The claims of `token`, verified against the service's published JWKS."""
    keys = KeySet.import_key_set(client.get("/jwks.json").json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


def kid_of(token: str) -> str:
    return str(extract_compact(token.encode()).protected["kid"])


def row_counts(identity: Identity) -> dict[str, int]:
    with identity.store.database.transaction() as tx:
        return {table: tx.execute(f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}
