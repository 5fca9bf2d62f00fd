"""A missing read-model table (`Dialect.missing_table`) is told apart from any other failure
by what each engine says: PostgreSQL's error code, SQLite's message."""

import sqlite3

import psycopg
import pytest

from readmodels.dialects import PostgresDialect, SQLiteDialect
from tests.support.postgres import require_postgres


def sqlite_error(statement: str) -> Exception:
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute(statement)
    except sqlite3.Error as error:
        return error
    finally:
        connection.close()
    raise AssertionError(f"{statement} did not fail")


def postgres_error(statement: str) -> Exception:
    with psycopg.connect(require_postgres(), autocommit=True) as connection:
        try:
            connection.execute(statement)
        except psycopg.Error as error:
            return error
    raise AssertionError(f"{statement} did not fail")


def test_sqlite_s_missing_table_is_named() -> None:
    missing_table = SQLiteDialect().missing_table
    error = sqlite_error("SELECT * FROM rm_partition_checkpoints")

    assert missing_table(error, "rm_checkpoints", "rm_partition_checkpoints")
    assert not missing_table(error, "rm_checkpoints")
    assert not missing_table(sqlite_error("SELECT nothing_here"), "nothing_here")


@pytest.mark.postgres
def test_postgres_s_missing_table_is_named() -> None:
    missing_table = PostgresDialect().missing_table
    error = postgres_error("SELECT * FROM rm_partition_checkpoints")

    assert missing_table(error, "rm_checkpoints", "rm_partition_checkpoints")
    assert not missing_table(error, "rm_checkpoints")
    assert not missing_table(postgres_error("SELECT nothing_here"), "nothing_here")
    assert not missing_table(postgres_error("SELECT 1/0"), "rm_checkpoints")
