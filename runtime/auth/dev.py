"""The embedded default's development mode: auth on, with a signing key of its own.

`strata` without `STRATA_JWKS_URL` trusts one development key, kept in the data directory
(`dev-signing-key.json`, readable by its owner only) so that tokens survive a restart, and
prints an operator token at start, also written to `dev-token` beside it. Nothing of this runs
in the stack: its services trust the identity service's JWKS only.
"""

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey

from runtime.auth.jwks import StaticKeys
from runtime.auth.principal import Role
from runtime.auth.verifier import ALGORITHM, AUDIENCE

KEY_FILE = "dev-signing-key.json"
TOKEN_FILE = "dev-token"  # noqa: S105 - a file name
DEV_KID = "strata-dev"
DEV_OPERATOR = "dev-operator"
DEV_TOKEN_SECONDS = 7 * 24 * 3600


def dev_key(data_dir: Path) -> ECKey:
    """The development signing key of this data directory, made on first use."""
    path = data_dir / KEY_FILE
    if path.exists():
        return ECKey.import_key(json.loads(path.read_text()))
    key = ECKey.generate_key("P-256", parameters={"kid": DEV_KID})
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(key.as_dict(private=True), file)
    return key


class DevKeys:
    """The key set a development process trusts: its development key's public half, read (or
    made) on the first token, not when the app is built."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._keys: StaticKeys | None = None

    async def key(self, kid: str) -> ECKey | None:
        if self._keys is None:
            private = await asyncio.to_thread(dev_key, self._data_dir)
            public = ECKey.import_key(private.as_dict(private=False))
            self._keys = StaticKeys({DEV_KID: public})
        return await self._keys.key(kid)


def mint(
    key: ECKey,
    issuer: str,
    subject: str,
    roles: Iterable[Role],
    *,
    scope: str = "",
    seconds: int = DEV_TOKEN_SECONDS,
) -> str:
    """A token signed with the development key, as the identity service would issue it."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + seconds,
        "jti": str(uuid.uuid4()),
        "roles": [str(role) for role in roles],
        "scope": scope,
    }
    return jwt.encode({"alg": ALGORITHM, "kid": key.kid}, claims, key)


def write_dev_token(data_dir: Path, issuer: str) -> tuple[str, Path]:
    """A fresh development operator token, and the file it is written to."""
    token = mint(dev_key(data_dir), issuer, DEV_OPERATOR, [Role.OPERATOR])
    path = data_dir / TOKEN_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token, path
