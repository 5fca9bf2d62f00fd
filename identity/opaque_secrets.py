"""Opaque secrets (refresh tokens, client secrets): random, shown once, stored as a digest.

They carry 256 random bits, so a plain SHA-256 digest is as good as a slow password hash and
lets the store find a token by its digest.
"""

import hashlib
import hmac
import secrets

SECRET_BYTES = 32


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(stored: str, secret: str) -> bool:
    return hmac.compare_digest(stored, digest(secret))
