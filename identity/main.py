"""`strata-identity`: serve the identity service, create clients, rotate keys, mint a dev token.

    strata-identity serve
    strata-identity clients create NAME --role operator|service [--scope "payments:write ..."]
    strata-identity keys rotate
    strata-identity dev-token [--seconds N]
    strata-identity sign-ins unlock ADDRESS

Exit codes: 0 done, 1 refused (a client of that name exists) or failed (the database does not
answer), 2 bad arguments or settings.
"""

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import TypeAdapter, ValidationError

from contexts.registered import REGISTRY
from domain.errors import InvalidValue
from domain.values import email_claim_key, normalized_email
from identity.accounts import ClientExists
from identity.profiles import NoProfiles
from identity.service import Identity, build_identity
from identity.settings import ClientId, IdentitySettings, Role, Scope
from identity.tokens import Grant
from runtime.cli import CommandFailed, run
from runtime.http.preflight import preflight
from runtime.http.unreadable_requests import ProblemHttpProtocol
from runtime.settings import load_settings

PROG = "strata-identity"
FACTORY = "identity.app:create_app"
DEV_SUBJECT = "dev-operator"
cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
clients = typer.Typer(help="Service accounts and operators.", no_args_is_help=True)
keys = typer.Typer(help="Signing keys.", no_args_is_help=True)
sign_ins = typer.Typer(help="Throttled password sign-ins.", no_args_is_help=True)
cli.add_typer(clients, name="clients")
cli.add_typer(keys, name="keys")
cli.add_typer(sign_ins, name="sign-ins")


def _settings() -> IdentitySettings:
    settings = load_settings(PROG, IdentitySettings)
    assert isinstance(settings, IdentitySettings)
    return settings


class DatabaseUnavailable(CommandFailed):
    pass


@contextmanager
def _prepared() -> Iterator[Identity]:
    settings = _settings()
    # the pool warns at each attempt to reach a database that does not answer: one line will say
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    identity = build_identity(settings, NoProfiles())
    try:
        identity.prepare()
    except Exception as error:
        where = "its SQLite file" if settings.identity_mode == "embedded" else "PostgreSQL"
        raise DatabaseUnavailable(f"the identity database ({where}) failed: {error}") from error
    try:
        yield identity
    finally:
        identity.store.database.close()


@cli.command()
def serve() -> None:
    """Serve sign-up, the token endpoint, the JWKS and discovery."""
    settings = _settings()
    preflight(PROG, FACTORY)
    base = f"http://{settings.identity_host}:{settings.identity_port}"
    where = settings.data_dir.resolve() if settings.identity_mode == "embedded" else "PostgreSQL"
    print(f"strata identity ({settings.identity_mode} mode, database in {where})", flush=True)
    print(f"  issuer: {settings.identity_issuer}\n  docs:   {base}/docs", flush=True)
    uvicorn.run(
        FACTORY,
        factory=True,
        host=settings.identity_host,
        port=settings.identity_port,
        log_level=settings.log_level,
        log_config=None,  # the JSON log lines of runtime.logs
        http=ProblemHttpProtocol,
        access_log=False,
    )


def _checked(value: str, kind: Any, what: str) -> str:
    try:
        return str(TypeAdapter(kind).validate_python(value))
    except ValidationError:
        raise typer.BadParameter(f"{value!r} is not a valid {what}") from None


def _known_contexts(scope: str) -> str:
    named = {item.partition(":")[0] for item in scope.split()}
    unknown = sorted(named - set(REGISTRY.names))
    if unknown:
        raise typer.BadParameter(
            f"no context {', '.join(map(repr, unknown))}: a scope names one of"
            f" {', '.join(REGISTRY.names)}"
        )
    return scope


@clients.command("create")
def create_client(
    name: Annotated[str, typer.Argument(help="The client id: lowercase letters, digits, '-'.")],
    role: Annotated[str, typer.Option(help="operator or service.")],
    scope: Annotated[str, typer.Option(help='Space-separated, as "payments:write".')] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a client and print its secret, once: it is stored only as a digest."""
    client_id = _checked(name, ClientId, "client id (lowercase letters, digits and '-')")
    checked_role = _checked(role, Role, "role (operator or service)")
    checked_scope = _known_contexts(_checked(scope, Scope, 'scope (such as "payments:write")'))
    with _prepared() as identity:
        try:
            created = identity.accounts.create_client(client_id, checked_role, checked_scope)
        except ClientExists as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(vars(created)))
    else:
        print(f"client_id:     {created.client_id}\nclient_secret: {created.secret}")
        print("The secret is shown once; keep it where the client reads it.", file=sys.stderr)


@keys.command("rotate")
def rotate_keys() -> None:
    """Make a new signing key; the previous one stays published until its tokens expire."""
    with _prepared() as identity:
        key = identity.issuer.rotate()
    print(f"kid: {key.kid}\nsigns from: {key.active_from} (epoch seconds)")


@sign_ins.command("unlock")
def unlock(
    address: Annotated[str, typer.Argument(help="The account's email address.")],
) -> None:
    """End the sign-in lockout of an address now, and its count of failed attempts."""
    try:
        email_key = email_claim_key(normalized_email(address))
    except InvalidValue as error:
        raise typer.BadParameter(str(error)) from None
    with _prepared() as identity:
        cleared = identity.throttle.clear(email_key)
    print("unlocked" if cleared else "nothing to unlock: no attempts counted for this address")


@cli.command("dev-token")
def dev_token(
    seconds: Annotated[
        int | None, typer.Option(min=30, max=86_400, help="Lifetime (default: the setting).")
    ] = None,
) -> None:
    """Print an operator's access token, for development. A key rotation ends it early: a
    retired key stays published only for the access-token lifetime."""
    with _prepared() as identity:
        print(dev_operator_token(identity, seconds))


def dev_operator_token(identity: Identity, seconds: int | None = None) -> str:
    """An operator's token (subject `dev-operator`), signed by the current key."""
    return identity.issuer.access_token(Grant(DEV_SUBJECT, ("operator",)), seconds).token


def main(argv: list[str] | None = None) -> None:
    run(cli, PROG, argv)
