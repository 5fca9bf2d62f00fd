"""`python -m eventlog.provision`: create the stack's PostgreSQL databases that do not exist yet.

One database per service: the event store of each registered context whose URL is set
(`STRATA_<CONTEXT>_DATABASE_URL`), the read-model database (`STRATA_READ_DATABASE_URL`) and
the identity service's (`STRATA_IDENTITY_DATABASE_URL`).
Each URL is read on its own, so a deployment of some contexts only provisions theirs. Tables are
created by the services themselves when they start. Runs in `scripts/stack` and as compose's
one-shot `provision` service. Exit codes: 0 done, 1 invalid settings, no URL set, or a database
server refused (one line on stderr).
"""

import os
import sys

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.sql import SQL, Identifier
from pydantic import ValidationError

from contexts.registered import REGISTRY
from contexts.registry import Registry
from runtime.settings import CommonSettings, settings_model, settings_problems

IDENTITY_DATABASE_URL = "STRATA_IDENTITY_DATABASE_URL"


def stack_database_urls(registry: Registry = REGISTRY) -> list[str]:
    """The URLs set in the environment: each context's event store's, the read models', then
    identity's."""
    urls = [settings_model((name,))().database_url(name) for name in registry.names]
    urls.append(CommonSettings().read_database_url)
    # Identity's settings live in its own package, which this backbone does not import.
    urls.append(os.environ.get(IDENTITY_DATABASE_URL))
    return [url for url in urls if url]


def create_missing_databases(urls: list[str]) -> list[str]:
    """Create each database on its own server, connecting to that server's `postgres` database."""
    created = []
    for url in urls:
        dbname = str(conninfo_to_dict(url)["dbname"])
        with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname])
            if exists.fetchone() is None:
                conn.execute(SQL("CREATE DATABASE {}").format(Identifier(dbname)))
                created.append(dbname)
    return created


def main() -> None:
    try:
        urls = stack_database_urls()
    except ValidationError as error:
        sys.exit(f"provision: invalid settings: {settings_problems(error)}")
    if not urls:
        sys.exit("provision: no database URL is set (STRATA_*_DATABASE_URL); nothing to do")
    try:
        created = create_missing_databases(urls)
    except psycopg.Error as error:
        sys.exit(f"provision: {str(error).strip().splitlines()[0]}")
    print("created: " + (", ".join(created) if created else "nothing (all databases exist)"))


if __name__ == "__main__":
    main()
