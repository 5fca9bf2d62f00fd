"""Identity follows the users context's address changes, so a user signs in with the address
their profile has now, and no longer with the one it had.

The users context publishes `UserProfile.EmailChanged` (`domain.users.profile`); identity takes
its log in through an `eventlog.replicas.Intake` of its own, fed as every follower is fed
(`identity.following`): from the users' JetStream stream in the stack, from the users' SQLite
file in the embedded mode. Each page of the log is taken in in one transaction of identity's
database together with the position it reaches (`identity_followed_logs`), and what is at or
behind that position is skipped: duplicates, redeliveries and replays change nothing.

For each change of an account's address (a profile without an account is no business of
identity's), the credential moves to the new address and the account's sign-in throttle
(`identity.throttle`, counted per address) moves with it: a series of failed attempts goes on
under the new address, and the old address, now no account's, starts clean.

The users context keeps each address to one profile (a claim, case-insensitive), and its log
orders a release before the next claim of the same address, so taking the log in order never
finds the new address held by another account. Should it (identity's row of that account is
stale: the account was attached with an address read over HTTP just before it changed), the
change is refused, logged, and the log goes on: an account is never handed another's address.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from domain.values import email_claim_key
from eventlog.envelope import EventEnvelope
from eventlog.replicas import ReplicaCheckpoint
from identity.database import Database, Transaction

log = logging.getLogger("strata.identity")

USERS = "users"
"""The context whose address changes identity follows."""
EMAIL_CHANGED = ("UserProfile", "EmailChanged")


@dataclass(frozen=True)
class AddressChange:
    user_id: str
    email: str

    @property
    def email_key(self) -> str:
        return email_claim_key(self.email)


def address_change(envelope: EventEnvelope) -> AddressChange | None:
    """The change of a profile's address this users' event makes, if it makes one."""
    if (envelope.aggregate_type, envelope.event_type) != EMAIL_CHANGED:
        return None
    return AddressChange(str(envelope.aggregate_id), str(envelope.data["email"]))


class AddressIntake:
    """Takes the users' log in (`eventlog.replicas.Intake`), exactly once in effect."""

    upstream = USERS

    def __init__(self, database: Database) -> None:
        self._database = database

    def checkpoint(self) -> ReplicaCheckpoint:
        with self._database.transaction() as tx:
            rows = tx.execute(
                "SELECT position, stream_seq FROM identity_followed_logs WHERE upstream = %s",
                (self.upstream,),
            )
        return ReplicaCheckpoint(*rows[0]) if rows else ReplicaCheckpoint()

    def take_in(
        self, envelopes: Sequence[EventEnvelope], stream_seq: int = 0
    ) -> ReplicaCheckpoint | None:
        if not envelopes:
            return None
        with self._database.transaction() as tx:
            held = self._locked_checkpoint(tx)
            for envelope in envelopes:
                change = address_change(envelope)
                if envelope.position > held.position and change is not None:
                    _apply(tx, change)
            reached = ReplicaCheckpoint(
                max(held.position, envelopes[-1].position), max(held.stream_seq, stream_seq)
            )
            tx.execute(
                "UPDATE identity_followed_logs SET position = %s, stream_seq = %s"
                " WHERE upstream = %s",
                (reached.position, reached.stream_seq, self.upstream),
            )
        return reached

    def _locked_checkpoint(self, tx: Transaction) -> ReplicaCheckpoint:
        """The checkpoint, its row locked until the transaction ends: two feeds of one
        identity (replicas, workers) take a page in one after the other."""
        tx.execute(
            "INSERT INTO identity_followed_logs VALUES (%s, 0, 0) ON CONFLICT DO NOTHING",
            (self.upstream,),
        )
        [row] = tx.execute(
            "UPDATE identity_followed_logs SET position = position WHERE upstream = %s"
            " RETURNING position, stream_seq",
            (self.upstream,),
        )
        return ReplicaCheckpoint(*row)


def _apply(tx: Transaction, change: AddressChange) -> None:
    holders = tx.execute(
        "SELECT user_id FROM identity_credentials WHERE email_key = %s AND user_id <> %s",
        (change.email_key, change.user_id),
    )
    if holders:
        log.error(
            "the address of user %s changed to one account %s holds here: refused",
            change.user_id,
            holders[0][0],
        )
        return
    previous = tx.execute(
        "SELECT email_key FROM identity_credentials WHERE user_id = %s", (change.user_id,)
    )
    if not previous:
        return  # a profile without an account
    tx.execute(
        "UPDATE identity_credentials SET email = %s, email_key = %s WHERE user_id = %s",
        (change.email, change.email_key, change.user_id),
    )
    _move_throttle(tx, previous[0][0], change.email_key)


def _move_throttle(tx: Transaction, old_key: str, new_key: str) -> None:
    """The account's sign-in series follows it to its new address (if it has one); what was
    counted against the new address before it was this account's is not this account's."""
    if old_key == new_key:
        return
    moving = tx.execute("SELECT 1 FROM identity_sign_in_attempts WHERE email_key = %s", (old_key,))
    if not moving:
        return
    tx.execute("DELETE FROM identity_sign_in_attempts WHERE email_key = %s", (new_key,))
    tx.execute(
        "UPDATE identity_sign_in_attempts SET email_key = %s WHERE email_key = %s",
        (new_key, old_key),
    )
