"""The token endpoint's grants (RFC 6749): password, refresh_token and client_credentials.

Every refusal of credentials is the same `InvalidGrant` (or `InvalidClient`), whatever was wrong:
an unknown address and a wrong password are told apart by no answer and no timing. Password
sign-ins of an account are throttled (`identity.throttle`): a locked one is `SignInThrottled`.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidValue
from domain.values import email_claim_key, normalized_email
from identity.issuer import Clock, Issuer, system_clock
from identity.opaque_secrets import digest, new_secret, same_digest
from identity.passwords import Passwords
from identity.store import IdentityStore, RefreshOutcome
from identity.throttle import SignInThrottle
from identity.tokens import Grant

DECOY_DIGEST = digest("a secret no client has")


class InvalidGrant(Exception):
    """Wrong credentials, or an unknown, expired, revoked or reused refresh token."""


class AccountDeactivated(InvalidGrant):
    """The password is right, but the user's profile is deactivated."""


class InvalidClient(Exception):
    """An unknown client or a wrong client secret."""


@dataclass(frozen=True)
class TokenAnswer:
    access_token: str
    expires_in: int
    refresh_token: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


class Grants:
    def __init__(
        self,
        store: IdentityStore,
        issuer: Issuer,
        passwords: Passwords,
        throttle: SignInThrottle,
        refresh_seconds: int,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._issuer = issuer
        self._passwords = passwords
        self._throttle = throttle
        self._refresh_seconds = refresh_seconds
        self._clock = clock

    def password(self, username: str, password: str) -> TokenAnswer:
        """A user's sign-in: `username` is the email address."""
        email_key = _email_key(username)
        if email_key:  # no account has an invalid address: nothing to protect
            self._throttle.attempt(email_key)
        credential = self._store.credential(email_key)
        stored_hash = credential.password_hash if credential else None
        if credential is None or not self._passwords.matches(stored_hash, password):
            raise InvalidGrant("the username or the password is wrong")
        self._throttle.succeeded(email_key)
        if not credential.active:
            raise AccountDeactivated("the account's profile is deactivated")
        if self._passwords.needs_rehash(credential.password_hash):
            self._store.rehash(credential.user_id, self._passwords.hash(password))
        grant = Grant(credential.user_id, ("user",))
        refresh_token = new_secret()
        self._store.add_refresh_token(
            digest(refresh_token), str(uuid.uuid4()), grant, self._expiry()
        )
        return self._answer(grant, refresh_token)

    def refresh(self, refresh_token: str) -> TokenAnswer:
        """A new access token and a new refresh token for a refresh token, which is spent."""
        successor = new_secret()
        rotation = self._store.rotate_refresh_token(
            digest(refresh_token), digest(successor), self._clock(), self._expiry()
        )
        if rotation.outcome is RefreshOutcome.REUSED:
            raise InvalidGrant("the refresh token was used before; its sign-in is revoked")
        if rotation.grant is None:
            raise InvalidGrant("the refresh token is unknown, expired or revoked")
        return self._answer(rotation.grant, successor)

    def client_credentials(self, client_id: str, secret: str) -> TokenAnswer:
        """A service account's or an operator's token; no refresh token (RFC 6749 §4.4.3)."""
        client = self._store.client(client_id)
        matches = same_digest(client.secret_digest if client else DECOY_DIGEST, secret)
        if client is None or not matches:
            raise InvalidClient("the client id or the client secret is wrong")
        return self._answer(Grant(client.client_id, (client.role,), client.scope), None)

    def _answer(self, grant: Grant, refresh_token: str | None) -> TokenAnswer:
        issued = self._issuer.access_token(grant)
        return TokenAnswer(issued.token, issued.expires_in, refresh_token)

    def _expiry(self) -> int:
        return self._clock() + self._refresh_seconds


def _email_key(username: str) -> str:
    try:
        return email_claim_key(normalized_email(username))
    except InvalidValue:
        return ""  # no account has it: the check below costs a hash like any other
