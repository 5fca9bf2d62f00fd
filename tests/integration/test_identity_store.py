"""Identity's store on both engines (a SQLite file, a real PostgreSQL database): preparing it
twice or at once, refresh-token rotation and reuse under concurrency, key rotation over time,
the sign-in throttle under a burst of parallel guesses."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from identity.accounts import bootstrap_client
from identity.grants import InvalidGrant
from identity.profiles import NoProfiles
from identity.service import Identity, build_identity
from identity.settings import IdentitySettings, parse_bootstrap_clients
from identity.store import RefreshOutcome
from identity.throttle import SignInThrottled
from identity.tokens import Grant, InvalidToken
from tests.support.identity import kid_of
from tests.support.postgres import require_postgres, scratch_databases

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
TTL = 300
CLIENTS = '[{"client_id": "saga", "role": "service", "secret": "ssssssssssssssss"}]'


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture(params=BACKENDS)
def identity_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IdentitySettings]:
    def settings(database_url: str | None = None) -> IdentitySettings:
        return IdentitySettings(
            data_dir=tmp_path,
            identity_password_profile="CHEAPEST",
            identity_bootstrap_clients=CLIENTS,
            db_pool_size=4,
            identity_database_url=database_url,
        )

    if request.param == "sqlite":
        yield settings()
        return
    with scratch_databases(require_postgres(), "identity") as urls:
        yield settings(urls["identity"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def identity(identity_settings: IdentitySettings, clock: Clock) -> Iterator[Identity]:
    built = build_identity(identity_settings, NoProfiles(), clock)
    built.prepare()
    yield built
    built.store.database.close()


def test_replicas_preparing_at_once_make_one_key_and_one_of_each_client(
    identity_settings: IdentitySettings, clock: Clock
) -> None:
    replicas = [build_identity(identity_settings, NoProfiles(), clock) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda replica: replica.prepare(), replicas))
    replicas[0].prepare()  # and again, later
    store = replicas[0].store
    assert len(store.signing_keys()) == 1
    with store.database.transaction() as tx:
        assert tx.execute("SELECT client_id FROM identity_clients") == [("saga",)]
    for replica in replicas:
        replica.store.database.close()


def test_a_bootstrap_client_signs_in_with_its_given_secret(identity: Identity) -> None:
    (saga,) = parse_bootstrap_clients(CLIENTS)
    assert identity.store.client("saga") == bootstrap_client(saga)
    token = identity.grants.client_credentials("saga", saga.secret).access_token
    assert identity.issuer.verify(token) == Grant("saga", ("service",), "")


def test_a_refresh_token_spent_twice_at_once_rotates_once_and_revokes_the_family(
    identity: Identity,
) -> None:
    identity.accounts.attach("u-1", "u1@example.org", identity.accounts.hash_password("p" * 12))
    first = identity.grants.password("u1@example.org", "p" * 12)
    assert first.refresh_token is not None
    token = first.refresh_token

    def spend(_: int) -> str:
        try:
            answer = identity.grants.refresh(token)
        except InvalidGrant as refused:
            return str(refused)
        assert answer.refresh_token is not None
        return answer.refresh_token

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(spend, range(4)))
    rotated = [o for o in outcomes if "refresh token" not in o]
    assert len(rotated) == 1
    assert all("used before" in o for o in outcomes if o not in rotated)
    with pytest.raises(InvalidGrant):  # the reuse revoked the successor too
        identity.grants.refresh(rotated[0])


def test_a_refresh_token_expires(identity: Identity, clock: Clock) -> None:
    identity.accounts.attach("u-2", "u2@example.org", identity.accounts.hash_password("p" * 12))
    refresh_token = identity.grants.password("u2@example.org", "p" * 12).refresh_token
    assert refresh_token is not None
    clock.now += identity.settings.identity_refresh_token_seconds
    with pytest.raises(InvalidGrant, match="expired"):
        identity.grants.refresh(refresh_token)
    rotation = identity.store.rotate_refresh_token("unknown", "next", clock.now, clock.now + 1)
    assert rotation.outcome is RefreshOutcome.INVALID


def test_a_rotated_key_verifies_its_tokens_until_they_expire(
    identity: Identity, clock: Clock
) -> None:
    issuer = identity.issuer
    old_token = issuer.access_token(Grant("u", ("user",))).token
    new_key = issuer.rotate()
    assert new_key.active_from == clock.now + 1  # a rotation within the first key's second
    same_second = issuer.access_token(Grant("u", ("user",))).token
    assert same_second.split(".")[0] == old_token.split(".")[0]  # the same header: the old kid
    clock.now += 1
    new_token = issuer.access_token(Grant("u", ("user",))).token
    assert [k.kid for k in issuer.published()] == [new_key.kid, kid_of(old_token)]
    assert issuer.verify(new_token).subject == "u"

    clock.now += TTL - 1  # the old token's last second
    assert issuer.verify(old_token).subject == "u"
    clock.now += 120
    assert [k.kid for k in issuer.published()] == [new_key.kid]
    with pytest.raises(InvalidToken):
        issuer.verify(old_token)


def test_a_password_hashed_with_an_older_profile_is_rehashed_at_sign_in(
    identity_settings: IdentitySettings, clock: Clock
) -> None:
    cheap = build_identity(identity_settings, NoProfiles(), clock)
    cheap.prepare()
    cheap.accounts.attach("u-3", "u3@example.org", cheap.accounts.hash_password("p" * 12))
    stronger = identity_settings.model_copy(
        update={"identity_password_profile": "RFC_9106_LOW_MEMORY"}
    )
    strong = build_identity(stronger, NoProfiles(), clock)
    strong.prepare()
    strong.grants.password("u3@example.org", "p" * 12)
    credential = strong.store.credential_of_user("u-3")
    assert credential is not None
    assert "m=65536" in credential.password_hash
    cheap.store.database.close()
    strong.store.database.close()


def test_parallel_wrong_passwords_get_no_more_checks_than_the_throttle_allows(
    identity: Identity,
) -> None:
    """Counted before the hash and under a row lock: a burst of guesses sent at once has its
    passwords checked `max_failures` times, no more; the rest are throttled."""
    identity.accounts.attach("u-3", "u3@example.org", identity.accounts.hash_password("p" * 12))
    allowed = identity.settings.identity_sign_in_max_failures

    def guess(attempt: int) -> str:
        try:
            identity.grants.password("u3@example.org", f"wrong guess {attempt:04d}")
        except (InvalidGrant, SignInThrottled) as refused:
            return type(refused).__name__
        return "signed in"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(guess, range(4 * allowed)))
    assert outcomes.count("InvalidGrant") == allowed
    assert outcomes.count("SignInThrottled") == 3 * allowed
    with pytest.raises(SignInThrottled):
        identity.grants.password("u3@example.org", "p" * 12)
