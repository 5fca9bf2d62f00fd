"""Accounts: a user's credential bound to their profile id, and the clients (service accounts,
operators) whose secret is shown once, when they are created."""

import hashlib
import json
from dataclasses import dataclass

from domain.values import email_claim_key
from identity.issuer import Clock, system_clock
from identity.opaque_secrets import digest, new_secret
from identity.passwords import Passwords
from identity.settings import BootstrapClient
from identity.store import Client, IdentityStore
from identity.throttle import SignInThrottle


class AccountExists(Exception):
    """The profile or the email address has a credential already."""


class ClientExists(Exception):
    pass


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key sent again with another sign-up."""


class WrongPassword(Exception):
    """The current password given to change it is not the account's."""


class NoAccount(Exception):
    """The signed-in subject has no password (a service account, or its account is gone)."""


@dataclass(frozen=True)
class NewClient:
    client_id: str
    secret: str
    role: str
    scope: str


def sign_up_fingerprint(name: str, email: str) -> str:
    """What identifies a sign-up besides its password (checked against the stored hash)."""
    return hashlib.sha256(json.dumps([name, email]).encode()).hexdigest()


def bootstrap_client(client: BootstrapClient) -> Client:
    return Client(client.client_id, digest(client.secret), client.role, client.scope)


class Accounts:
    def __init__(
        self,
        store: IdentityStore,
        passwords: Passwords,
        throttle: SignInThrottle,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._passwords = passwords
        self._throttle = throttle
        self._clock = clock

    def hash_password(self, password: str) -> str:
        return self._passwords.hash(password)

    def has_account(self, email: str) -> bool:
        return self._store.credential(email_claim_key(email)) is not None

    def earlier_sign_up(self, key: str, fingerprint: str, password: str) -> str | None:
        """The user id of the sign-up made with `key`, if the same one was made before."""
        earlier = self._store.sign_up(key)
        if earlier is None:
            return None
        if earlier.fingerprint != fingerprint or not self._password_of(earlier.user_id, password):
            raise IdempotencyKeyReused("the Idempotency-Key was used for another sign-up")
        return earlier.user_id

    def _password_of(self, user_id: str, password: str) -> bool:
        credential = self._store.credential_of_user(user_id)
        stored_hash = credential.password_hash if credential else None
        return self._passwords.matches(stored_hash, password)

    def complete_sign_up(
        self, key: str, fingerprint: str, user_id: str, email: str, password_hash: str
    ) -> None:
        """Bind the credential to the profile created for this sign-up."""
        stored = self._store.complete_sign_up(
            key, fingerprint, user_id, email, email_claim_key(email), password_hash, self._clock()
        )
        if not stored:
            raise AccountExists(f"the address {email!r} or the profile has an account already")

    def attach(self, user_id: str, email: str, password_hash: str) -> None:
        """An account for a profile created elsewhere (an operator's act)."""
        if not self._store.add_credential(
            user_id, email, email_claim_key(email), password_hash, self._clock()
        ):
            raise AccountExists(f"the profile {user_id} or the address has an account already")

    def change_password(self, user_id: str, current: str, new: str) -> int:
        """Replace the user's password, `current` being the right one, and sign every session of
        theirs out (their refresh tokens); how many sign-ins that ended. Guesses of `current`
        count against the account's sign-in throttle like sign-ins do."""
        credential = self._store.credential_of_user(user_id)
        if credential is None:
            raise NoAccount("this caller has no password to change")
        self._throttle.attempt(credential.email_key)
        if not self._passwords.matches(credential.password_hash, current):
            raise WrongPassword("the current password is wrong")
        self._throttle.succeeded(credential.email_key)
        return self._store.change_password(user_id, self._passwords.hash(new), self._clock())

    def create_client(self, client_id: str, role: str, scope: str) -> NewClient:
        secret = new_secret()
        client = Client(client_id, digest(secret), role, scope)
        if not self._store.add_client(client, self._clock()):
            raise ClientExists(f"a client {client_id!r} exists already")
        return NewClient(client_id, secret, role, scope)
