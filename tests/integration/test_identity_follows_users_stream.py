"""Identity following the users' profiles from their JetStream stream into its own PostgreSQL
database (`identity.following`, stack mode):

- address changes: the credential and the sign-in throttle move to the new address; a profile
  without an account, a replayed or duplicated page, and an address another account holds change
  nothing; a feed started again goes on from the checkpoint;
- deactivation: the password no longer signs in and every refresh token is revoked, even for a
  profile that got its account after it was deactivated; reactivation lets the password in again.
"""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import nats
import pytest

from eventlog.envelope import EventEnvelope
from eventlog.jetstream import context_stream
from identity.following import following_users
from identity.grants import AccountDeactivated, InvalidGrant
from identity.profile_intake import USERS, ProfileIntake
from identity.profiles import NoProfiles
from identity.service import Identity, build_identity
from identity.settings import IdentitySettings
from tests.support.nats import create_stream, delete_streams, new_namespace, publish, require_nats
from tests.support.postgres import require_postgres, scratch_databases

pytestmark = pytest.mark.postgres


@pytest.fixture
def identity() -> Iterator[Identity]:
    postgres, nats_url = require_postgres(), require_nats()
    with scratch_databases(postgres, "identity") as urls:
        settings = IdentitySettings(
            identity_database_url=urls["identity"],
            nats_url=nats_url,
            stream_namespace=new_namespace(),
            identity_password_profile="CHEAPEST",
        )
        built = build_identity(settings, NoProfiles())
        built.prepare()
        try:
            yield built
        finally:
            built.store.database.close()
            delete_streams(nats_url, context_stream(USERS, settings).name)


def email_changed(position: int, user: UUID, email: str, version: int = 2) -> EventEnvelope:
    return EventEnvelope(
        position, USERS, "UserProfile", user, version, "EmailChanged", 1,
        datetime.now(UTC), {"email": email, "previous_email": "whatever@example.org"},
    )  # fmt: skip


def standing(position: int, user: UUID, event_type: str, version: int) -> EventEnvelope:
    return EventEnvelope(
        position, USERS, "UserProfile", user, version, event_type, 1, datetime.now(UTC), {}
    )


PASSWORD = "x" * 12


def account(identity: Identity, email: str, user: UUID | None = None) -> UUID:
    user = user or uuid4()
    identity.accounts.attach(str(user), email, identity.accounts.hash_password(PASSWORD))
    return user


def email_of(identity: Identity, user: UUID) -> str | None:
    credential = identity.store.credential_of_user(str(user))
    return credential.email_key if credential else None


def run_feed(identity: Identity, envelopes: list[EventEnvelope], reach: int) -> None:
    """Publish `envelopes` to the users' stream, run a feed until it has reached `reach`."""
    settings = identity.settings
    stream = context_stream(USERS, settings)

    async def main() -> None:
        nc = await nats.connect(settings.nats_url)
        js = nc.jetstream()
        if not envelopes or envelopes[0].position == 1:
            await create_stream(js, stream)
        await publish(js, stream, envelopes)
        await nc.close()
        async with following_users(settings, identity.store.database) as feed:
            assert await feed.reach(reach, timeout=20)

    asyncio.run(main())


def test_a_changed_address_moves_the_account_and_its_sign_in_series(identity: Identity) -> None:
    ada, bob = account(identity, "ada@example.org"), account(identity, "bob@example.org")
    stranger = uuid4()
    for _ in range(2):
        identity.throttle.attempt("ada@example.org")
    identity.throttle.attempt("ada.new@example.org")  # counted before it was ada's

    run_feed(
        identity,
        [
            email_changed(1, ada, "Ada.New@example.org"),
            email_changed(2, stranger, "nobody@example.org"),  # no account: ignored
            email_changed(3, bob, "ada.new@example.org"),  # held by ada here: refused
        ],
        reach=3,
    )

    assert email_of(identity, ada) == "ada.new@example.org"
    assert email_of(identity, bob) == "bob@example.org"
    assert identity.store.credential("ada@example.org") is None
    assert identity.store.credential_of_user(str(stranger)) is None
    with identity.store.database.transaction() as tx:
        counted = tx.execute("SELECT email_key, attempts FROM identity_sign_in_attempts")
    assert counted == [("ada.new@example.org", 2)]

    # started again, the feed goes on after its checkpoint: position 4 only
    run_feed(identity, [email_changed(4, ada, "ada.third@example.org", version=3)], reach=4)
    assert email_of(identity, ada) == "ada.third@example.org"


def test_a_page_taken_in_again_changes_nothing(identity: Identity) -> None:
    ada = account(identity, "ada@example.org")
    intake = ProfileIntake(identity.store.database)
    first = [email_changed(1, ada, "one@example.org"), email_changed(2, ada, "two@example.org")]

    assert intake.take_in(first, stream_seq=2) is not None
    replayed = intake.take_in(first[:1], stream_seq=1)  # a redelivery, behind the checkpoint

    assert email_of(identity, ada) == "two@example.org"
    assert replayed is not None and (replayed.position, replayed.stream_seq) == (2, 2)
    assert intake.take_in([]) is None


def test_a_deactivated_profile_cannot_sign_in_until_reactivated(identity: Identity) -> None:
    ada = account(identity, "ada@example.org")
    account(identity, "bob@example.org")
    signed_in = identity.grants.password("ada@example.org", PASSWORD)
    assert signed_in.refresh_token is not None
    late = uuid4()  # deactivated before its account is attached

    run_feed(
        identity,
        [standing(1, ada, "Deactivated", 2), standing(2, late, "Deactivated", 2)],
        reach=2,
    )
    account(identity, "late@example.org", late)

    for address in ("ada@example.org", "late@example.org"):
        with pytest.raises(AccountDeactivated):
            identity.grants.password(address, PASSWORD)
    with pytest.raises(InvalidGrant):
        identity.grants.refresh(signed_in.refresh_token)
    assert identity.grants.password("bob@example.org", PASSWORD).access_token  # untouched

    run_feed(identity, [standing(3, ada, "Reactivated", 3)], reach=3)
    assert identity.grants.password("ada@example.org", PASSWORD).access_token
    with pytest.raises(AccountDeactivated):
        identity.grants.password("late@example.org", PASSWORD)


def test_a_wrong_password_of_a_deactivated_profile_is_a_wrong_password(
    identity: Identity,
) -> None:
    ada = account(identity, "ada@example.org")
    ProfileIntake(identity.store.database).take_in([standing(1, ada, "Deactivated", 2)])

    with pytest.raises(InvalidGrant) as refused:
        identity.grants.password("ada@example.org", "not the password")
    assert not isinstance(refused.value, AccountDeactivated)  # tells nothing without the password
