"""Identity's records: credentials, sign-ups, clients, refresh tokens and signing keys.

Secrets are never stored: passwords as argon2id hashes, refresh tokens and client secrets as
SHA-256 digests (`identity.opaque_secrets`), private keys as PEM (not encrypted: the database is
identity's own and holds nothing else).
"""

from dataclasses import dataclass
from enum import Enum

from identity.database import SCHEMA, Database, Transaction
from identity.keys import StoredKey
from identity.tokens import Grant


@dataclass(frozen=True)
class Credential:
    user_id: str
    password_hash: str
    email_key: str
    active: bool = True
    """False while the user's profile is deactivated (`identity.standing`)."""


@dataclass(frozen=True)
class Client:
    client_id: str
    secret_digest: str
    role: str
    scope: str


@dataclass(frozen=True)
class SignUp:
    fingerprint: str
    user_id: str


class RefreshOutcome(Enum):
    ROTATED = "rotated"
    REUSED = "reused"
    """A token used before: its whole family is revoked now."""
    INVALID = "invalid"
    """Unknown, expired or revoked."""


@dataclass(frozen=True)
class Rotation:
    outcome: RefreshOutcome
    grant: Grant | None = None


CREDENTIAL = (
    "SELECT c.user_id, c.password_hash, c.email_key, d.user_id IS NULL"
    " FROM identity_credentials c"
    " LEFT JOIN identity_deactivated_users d ON d.user_id = c.user_id"
)


def _credential(rows: list[tuple[object, ...]]) -> Credential | None:
    if not rows:
        return None
    user_id, password_hash, email_key, active = rows[0]
    return Credential(str(user_id), str(password_hash), str(email_key), bool(active))


class IdentityStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def credential(self, email_key: str) -> Credential | None:
        with self.database.transaction() as tx:
            rows = tx.execute(CREDENTIAL + " WHERE c.email_key = %s", (email_key,))
        return _credential(rows)

    def credential_of_user(self, user_id: str) -> Credential | None:
        with self.database.transaction() as tx:
            rows = tx.execute(CREDENTIAL + " WHERE c.user_id = %s", (user_id,))
        return _credential(rows)

    def add_credential(
        self, user_id: str, email: str, email_key: str, password_hash: str, now: int
    ) -> bool:
        """Store a credential; False if the user or the address has one already."""
        with self.database.transaction() as tx:
            return self._insert_credential(tx, user_id, email, email_key, password_hash, now)

    def rehash(self, user_id: str, password_hash: str) -> None:
        with self.database.transaction() as tx:
            tx.execute(
                "UPDATE identity_credentials SET password_hash = %s WHERE user_id = %s",
                (password_hash, user_id),
            )

    def change_password(self, user_id: str, password_hash: str, now: int) -> int:
        """Store the user's new password hash and revoke every refresh token of the user (each
        sign-in's family), in one transaction; how many sign-ins that revoked."""
        with self.database.transaction() as tx:
            tx.execute(
                "UPDATE identity_credentials SET password_hash = %s WHERE user_id = %s",
                (password_hash, user_id),
            )
            revoked = tx.execute(
                "UPDATE identity_refresh_tokens SET revoked_at = %s"
                " WHERE subject = %s AND revoked_at IS NULL RETURNING family_id",
                (now, user_id),
            )
        return len({family for (family,) in revoked})

    def sign_up(self, idempotency_key: str) -> SignUp | None:
        with self.database.transaction() as tx:
            rows = tx.execute(
                "SELECT fingerprint, user_id FROM identity_sign_ups WHERE idempotency_key = %s",
                (idempotency_key,),
            )
        return SignUp(*rows[0]) if rows else None

    def complete_sign_up(
        self,
        idempotency_key: str,
        fingerprint: str,
        user_id: str,
        email: str,
        email_key: str,
        password_hash: str,
        now: int,
    ) -> bool:
        """Record the sign-up and its credential together; False (nothing stored) if the user or
        the address has a credential already or the key was used meanwhile."""
        with self.database.transaction() as tx:
            recorded = tx.execute(
                "INSERT INTO identity_sign_ups VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING user_id",
                (idempotency_key, fingerprint, user_id, now),
            )
            if not recorded:
                return False
            stored = self._insert_credential(tx, user_id, email, email_key, password_hash, now)
            if not stored:
                tx.execute(
                    "DELETE FROM identity_sign_ups WHERE idempotency_key = %s", (idempotency_key,)
                )
            return stored

    def _insert_credential(
        self, tx: Transaction, user_id: str, email: str, key: str, hash_: str, now: int
    ) -> bool:
        return bool(
            tx.execute(
                "INSERT INTO identity_credentials VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING user_id",
                (user_id, key, email, hash_, now),
            )
        )

    def client(self, client_id: str) -> Client | None:
        with self.database.transaction() as tx:
            rows = tx.execute(
                "SELECT client_id, secret_digest, role, scope FROM identity_clients"
                " WHERE client_id = %s",
                (client_id,),
            )
        return Client(*rows[0]) if rows else None

    def add_client(self, client: Client, now: int) -> bool:
        """Store a client; False if its id is taken."""
        with self.database.transaction() as tx:
            return self._insert_client(tx, client, now)

    def _insert_client(self, tx: Transaction, client: Client, now: int) -> bool:
        return bool(
            tx.execute(
                "INSERT INTO identity_clients VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING client_id",
                (client.client_id, client.secret_digest, client.role, client.scope, now),
            )
        )

    def add_refresh_token(
        self, token_digest: str, family_id: str, grant: Grant, expires_at: int
    ) -> None:
        with self.database.transaction() as tx:
            self._insert_refresh(tx, token_digest, family_id, grant, expires_at)

    def rotate_refresh_token(
        self, used_digest: str, new_digest: str, now: int, expires_at: int
    ) -> Rotation:
        """Spend a refresh token and store its successor in the same family, in one transaction.
        A token spent before revokes its family: whoever holds it, the thief or the owner, is
        signed out."""
        with self.database.transaction() as tx:
            spent = tx.execute(
                "UPDATE identity_refresh_tokens SET used_at = %s WHERE token_digest = %s"
                " AND used_at IS NULL AND revoked_at IS NULL AND expires_at > %s"
                " RETURNING family_id, subject, roles, scope",
                (now, used_digest, now),
            )
            if spent:
                family_id, subject, roles, scope = spent[0]
                grant = Grant(subject, tuple(roles.split()), scope)
                self._insert_refresh(tx, new_digest, family_id, grant, expires_at)
                return Rotation(RefreshOutcome.ROTATED, grant)
            found = tx.execute(
                "SELECT family_id, used_at FROM identity_refresh_tokens WHERE token_digest = %s",
                (used_digest,),
            )
            if not found or found[0][1] is None:
                return Rotation(RefreshOutcome.INVALID)
            tx.execute(
                "UPDATE identity_refresh_tokens SET revoked_at = %s"
                " WHERE family_id = %s AND revoked_at IS NULL",
                (now, found[0][0]),
            )
            return Rotation(RefreshOutcome.REUSED)

    def _insert_refresh(
        self, tx: Transaction, digest: str, family_id: str, grant: Grant, expires_at: int
    ) -> None:
        tx.execute(
            "INSERT INTO identity_refresh_tokens"
            " (token_digest, family_id, subject, roles, scope, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (digest, family_id, grant.subject, " ".join(grant.roles), grant.scope, expires_at),
        )

    def signing_keys(self) -> list[StoredKey]:
        with self.database.transaction() as tx:
            rows = tx.execute("SELECT kid, private_pem, active_from FROM identity_signing_keys")
        return [StoredKey(*row) for row in rows]

    def add_signing_key(self, key: StoredKey) -> None:
        with self.database.transaction() as tx:
            self._insert_key(tx, key)

    def prepare(self, first_key: StoredKey, clients: list[Client], now: int) -> None:
        """Create the schema if missing; store `first_key` if there is no key yet, and each
        client whose id is free. Replicas starting together do this one after the other."""
        with self.database.transaction(exclusive=True) as tx:
            for statement in SCHEMA:
                tx.execute(statement)
            if not tx.execute("SELECT 1 FROM identity_signing_keys LIMIT 1"):
                self._insert_key(tx, first_key)
            for client in clients:
                self._insert_client(tx, client, now)

    def _insert_key(self, tx: Transaction, key: StoredKey) -> None:
        tx.execute(
            "INSERT INTO identity_signing_keys VALUES (%s, %s, %s)",
            (key.kid, key.private_pem, key.active_from),
        )
