"""`python -m eventlog.provision` creates the stack's missing databases, and only those."""

import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.sql import SQL, Identifier

from eventlog.provision import create_missing_databases
from eventlog.provision import main as provision_main
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


def test_an_invalid_setting_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRATA_PROJECTOR_WORKERS", "abc")
    with pytest.raises(SystemExit) as exited:
        provision_main()
    message = str(exited.value.code)
    assert message.startswith("provision: invalid settings: STRATA_PROJECTOR_WORKERS: "), message
    assert "\n" not in message
