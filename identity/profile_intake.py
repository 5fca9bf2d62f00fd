"""Identity takes the users' log in: the changes of a profile that decide how it signs in,
its address (`identity.address_changes`) and whether it is active (`identity.standing`).

The log comes through an `eventlog.replicas.Intake`, fed as every follower is fed
(`identity.following`): from the users' JetStream stream in the stack, from the users' SQLite
file in the embedded mode. Each page is taken in in one transaction of identity's database
together with the position it reaches (`identity_followed_logs`), and what is at or behind that
position is skipped: duplicates, redeliveries and replays change nothing. Of the users' events
it needs three kinds (`PROFILE_KINDS`): a feed that reads the users' store reads those alone.
"""

from collections.abc import Sequence

from eventlog.envelope import EventEnvelope
from eventlog.log_pages import EventKind
from eventlog.replicas import ReplicaCheckpoint, page_end
from identity.address_changes import EMAIL_CHANGED, address_change, apply_address_change
from identity.database import Database, Transaction
from identity.standing import DEACTIVATED, REACTIVATED, apply_standing_change, standing_change

USERS = "users"
"""The context whose profiles identity follows."""
PROFILE_KINDS: frozenset[EventKind] = frozenset({EMAIL_CHANGED, DEACTIVATED, REACTIVATED})
"""The kinds of the users' events `take_in_event` acts on."""


def take_in_event(tx: Transaction, envelope: EventEnvelope) -> None:
    address = address_change(envelope)
    if address is not None:
        apply_address_change(tx, address)
    standing = standing_change(envelope)
    if standing is not None:
        apply_standing_change(tx, standing)


class ProfileIntake:
    """Takes the users' log in (`eventlog.replicas.Intake`), exactly once in effect."""

    upstream = USERS
    kinds = PROFILE_KINDS

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
        self, envelopes: Sequence[EventEnvelope], stream_seq: int = 0, *, reached: int = 0
    ) -> ReplicaCheckpoint | None:
        end = page_end(envelopes, reached)
        if not end:
            return None
        with self._database.transaction() as tx:
            held = self._locked_checkpoint(tx)
            for envelope in envelopes:
                if envelope.position > held.position:
                    take_in_event(tx, envelope)
            moved = ReplicaCheckpoint(max(held.position, end), max(held.stream_seq, stream_seq))
            tx.execute(
                "UPDATE identity_followed_logs SET position = %s, stream_seq = %s"
                " WHERE upstream = %s",
                (moved.position, moved.stream_seq, self.upstream),
            )
        return moved

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
