"""Identity follows the users context's address changes, so a user signs in with the address
their profile has now, and no longer with the one it had.

The users context publishes `UserProfile.EmailChanged` (`domain.users.profile`); identity takes
it in with the rest of the users' log (`identity.profile_intake`).

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
from dataclasses import dataclass

from domain.values import email_claim_key
from eventlog.envelope import EventEnvelope
from identity.database import Transaction

log = logging.getLogger("strata.identity")

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


def apply_address_change(tx: Transaction, change: AddressChange) -> None:
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
