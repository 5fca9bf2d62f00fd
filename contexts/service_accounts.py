"""The accounts a deployment gives its own processes at the identity service: one service
account per context that sends commands to the others (the fulfilment saga: `<other>:write` for
each of them), and an operator's.

Their secrets are derived from one deployment secret (HMAC-SHA256 of the client id), so the
identity service, which creates the accounts at its first start
(`STRATA_IDENTITY_BOOTSTRAP_CLIENTS`), and each process that signs in with one
(`STRATA_SERVICE_CLIENT_ID` / `_SECRET`), all started apart, agree on them. `scripts/stack`
keeps the deployment secret in var/stack/deployment-secret (made once, mode 600); compose.yaml
takes each account's secret from the environment (`compose_secret`).
"""

import hashlib
import hmac
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from contexts.registered import REGISTRY
from contexts.registry import BoundedContext, Registry

OPERATOR = "operator"
PROG = "python -m contexts.service_accounts"


def sends_commands(context: BoundedContext) -> bool:
    """Whether a context sends commands to other contexts' write services: a process manager,
    which reacts to other contexts' events and leaves durable jobs (the fulfilment saga)."""
    return bool(context.reactions) and bool(context.workers)


@dataclass(frozen=True)
class Account:
    client_id: str
    role: str
    scope: str = ""


def service_account(context: BoundedContext, registry: Registry = REGISTRY) -> Account | None:
    """The account of a context that sends commands: it may write to every other context."""
    if not sends_commands(context):
        return None
    scopes = " ".join(f"{name}:write" for name in registry.names if name != context.name)
    return Account(context.name, "service", scopes)


def accounts(registry: Registry = REGISTRY) -> list[Account]:
    services = (service_account(context, registry) for context in registry)
    return [*(account for account in services if account), Account(OPERATOR, OPERATOR)]


def client_secret(deployment_secret: str, client_id: str) -> str:
    return hmac.new(deployment_secret.encode(), client_id.encode(), hashlib.sha256).hexdigest()


def bootstrap_clients(secret_of: Callable[[str], str], accounts: Iterable[Account]) -> str:
    """The value of `STRATA_IDENTITY_BOOTSTRAP_CLIENTS` for these accounts, each with the
    secret `secret_of(client_id)`."""
    return json.dumps(
        [
            {
                "client_id": account.client_id,
                "role": account.role,
                "scope": account.scope,
                "secret": secret_of(account.client_id),
            }
            for account in accounts
        ]
    )


def compose_secret(client_id: str) -> str:
    """An account's secret in compose.yaml: `<CLIENT>_CLIENT_SECRET` from the environment (or
    compose's .env file), else a local-only default."""
    variable = f"{client_id.upper()}_CLIENT_SECRET"
    return f"${{{variable}:-local-{client_id}-client-secret}}"


def main(argv: list[str] | None = None) -> None:
    """`python -m contexts.service_accounts SECRET_FILE CLIENT_ID`: that account's secret."""
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 2:
        sys.exit(f"usage: {PROG} SECRET_FILE CLIENT_ID")
    secret_file, client_id = arguments
    try:
        deployment_secret = Path(secret_file).read_text(encoding="utf-8").strip()
    except OSError as error:
        sys.exit(f"{PROG}: {secret_file}: {error.strerror}")
    if client_id not in {account.client_id for account in accounts()}:
        sys.exit(f"{PROG}: no account {client_id!r}")
    print(client_secret(deployment_secret, client_id))


if __name__ == "__main__":
    main()
