"""`python -m eventlog.provision`: create the stack's PostgreSQL databases that do not exist yet.

One database per service (each registered context's event store) plus the read-model database,
as named by the settings. Tables are created by the services themselves when they start.
"""

import sys

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.sql import SQL, Identifier
from pydantic import ValidationError

from contexts.settings import Settings


def stack_database_urls(settings: Settings) -> list[str]:
    urls = [*settings.database_urls().values(), settings.read_database_url]
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
        settings = Settings()
    except ValidationError as error:
        sys.exit(f"provision: invalid settings: {error.errors()[0]['msg']}")
    urls = stack_database_urls(settings)
    if not urls:
        sys.exit("provision: no database URL is set (STRATA_*_DATABASE_URL); nothing to do")
    try:
        created = create_missing_databases(urls)
    except psycopg.Error as error:
        sys.exit(f"provision: {str(error).strip().splitlines()[0]}")
    print("created: " + (", ".join(created) if created else "nothing (all databases exist)"))


if __name__ == "__main__":
    main()
