"""Identity follows whether a user's profile is active: a deactivated profile cannot sign in.

The users context publishes `UserProfile.Deactivated` and `Reactivated` (`domain.users.profile`);
identity takes them in with the rest of the users' log (`identity.profile_intake`) and keeps the
deactivated profiles in `identity_deactivated_users`, whether or not they have an account yet (a
profile deactivated between its creation and its sign-up's credential stays deactivated).

A deactivation also revokes every refresh token of the user, in the same transaction, so no
device of theirs gets a new access token; one issued before lives out its few minutes.
Reactivation lets the password sign in again; the revoked refresh tokens stay revoked.
"""

from dataclasses import dataclass

from eventlog.envelope import EventEnvelope
from identity.database import Transaction

DEACTIVATED = ("UserProfile", "Deactivated")
REACTIVATED = ("UserProfile", "Reactivated")


@dataclass(frozen=True)
class StandingChange:
    user_id: str
    active: bool
    at: int
    """When the users context decided it (seconds since the epoch)."""


def standing_change(envelope: EventEnvelope) -> StandingChange | None:
    """The change of a profile's standing this users' event makes, if it makes one."""
    kind = (envelope.aggregate_type, envelope.event_type)
    if kind not in (DEACTIVATED, REACTIVATED):
        return None
    return StandingChange(
        str(envelope.aggregate_id), kind == REACTIVATED, int(envelope.timestamp.timestamp())
    )


def apply_standing_change(tx: Transaction, change: StandingChange) -> None:
    if change.active:
        tx.execute("DELETE FROM identity_deactivated_users WHERE user_id = %s", (change.user_id,))
        return
    tx.execute(
        "INSERT INTO identity_deactivated_users VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (change.user_id, change.at),
    )
    tx.execute(
        "UPDATE identity_refresh_tokens SET revoked_at = %s"
        " WHERE subject = %s AND revoked_at IS NULL",
        (change.at, change.user_id),
    )
