"""`python -m eventlog.provision` creates the stack's missing databases, and only those."""

import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from eventlog.provision import create_missing_databases
from tests.support.postgres import require_postgres

pytestmark = pytest.mark.postgres


def test_missing_databases_are_created_once() -> None:
    admin = require_postgres()
    names = [f"strata_prov_{uuid.uuid4().hex[:8]}_{n}" for n in ("a", "b")]
    urls = [make_conninfo(admin, dbname=name) for name in names]
    try:
        assert create_missing_databases(urls) == names
        assert create_missing_databases(urls) == []
        for url in urls:
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT current_database()").fetchone() is not None
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(SQL("DROP DATABASE IF EXISTS {}").format(Identifier(name)))
