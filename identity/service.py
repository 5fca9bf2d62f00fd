"""The identity service's parts, built from its settings, and how an endpoint reaches them."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter

from identity.accounts import Accounts, bootstrap_client
from identity.database import SQLITE_FILE, Database, PostgresDatabase, SqliteDatabase
from identity.grants import Grants
from identity.issuer import Clock, Issuer, system_clock
from identity.passwords import Passwords
from identity.settings import IdentitySettings
from identity.store import IdentityStore
from identity.throttle import SignInThrottle, ThrottlePolicy
from runtime.http.deadlines import Runner

T = TypeVar("T")


class Profiles(Protocol):
    """The users service (`identity.profiles`)."""

    async def register(self, name: str, email: str, sign_up_key: str) -> str: ...

    async def email_of(self, user_id: str) -> str: ...


class IdentityMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.tokens = Counter(
            "strata_identity_tokens",
            "Token requests by grant type and outcome (issued, refused)",
            ["grant_type", "outcome"],
            registry=registry,
        )


@dataclass
class Identity:
    settings: IdentitySettings
    store: IdentityStore
    issuer: Issuer
    grants: Grants
    accounts: Accounts
    runner: Runner
    metrics: IdentityMetrics
    profiles: Profiles

    def prepare(self) -> None:
        """Open the database, create its schema, the first key and the bootstrap clients."""
        self.store.database.open()
        clients = [bootstrap_client(c) for c in self.settings.bootstrap_clients()]
        self.store.prepare(self.issuer.first_key(), clients, self.issuer.clock())


def identity_database(settings: IdentitySettings) -> Database:
    if settings.identity_database_url is None:
        return SqliteDatabase(settings.data_dir / SQLITE_FILE, settings.request_timeout)
    return PostgresDatabase(
        settings.identity_database_url, settings.db_pool_size, settings.db_connect_timeout
    )


def throttle_policy(settings: IdentitySettings) -> ThrottlePolicy:
    return ThrottlePolicy(
        max_failures=settings.identity_sign_in_max_failures,
        lockout_seconds=settings.identity_sign_in_lockout_seconds,
        max_lockout_seconds=settings.identity_sign_in_max_lockout_seconds,
        quiet_seconds=settings.identity_sign_in_quiet_seconds,
    )


def build_identity(
    settings: IdentitySettings, profiles: Profiles, clock: Clock = system_clock
) -> Identity:
    """Everything of the service, connected to nothing yet (`Identity.prepare` connects)."""
    store = IdentityStore(identity_database(settings))
    passwords = Passwords(settings.identity_password_profile)
    issuer = Issuer(
        store,
        settings.identity_issuer,
        settings.identity_access_token_seconds,
        settings.identity_key_publish_ahead_seconds,
        clock,
    )
    throttle = SignInThrottle(store.database, throttle_policy(settings), clock)
    grants = Grants(
        store, issuer, passwords, throttle, settings.identity_refresh_token_seconds, clock
    )
    return Identity(
        settings=settings,
        store=store,
        issuer=issuer,
        grants=grants,
        accounts=Accounts(store, passwords, throttle, clock),
        runner=Runner(settings.worker_threads, settings.request_timeout),
        metrics=IdentityMetrics(CollectorRegistry()),
        profiles=profiles,
    )


def identity_of(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


async def run(request: Request, call: Callable[[], T]) -> T:
    """A blocking call (database, password hash) on the service's bounded threads."""
    return await identity_of(request).runner.run(call)
