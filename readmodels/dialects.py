"""The SQL dialects of the read databases: placeholders, parameter adaptation, column types and
DDL, and what a driver's errors mean (`readmodels.sql` runs statements through them)."""

import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, ClassVar
from uuid import UUID

import psycopg
import psycopg.errors

from readmodels.formats import utc_text

if TYPE_CHECKING:
    from readmodels.sql import Index, Table, Tx


class Dialect(ABC):
    name: ClassVar[str]
    placeholder: ClassVar[str]
    types: ClassVar[Mapping[str, str]]
    for_update: ClassVar[str]

    def sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    @abstractmethod
    def adapt(self, value: object) -> object:
        """A parameter as this driver takes it."""

    @abstractmethod
    def is_infrastructure_error(self, error: BaseException) -> bool:
        """True for a failure of the database (connection, lock, deadlock), which says nothing
        about the event being applied; False for an error the statement itself caused."""

    def is_driver_error(self, error: BaseException) -> bool:
        """True for any error the database reported (a statement's, or the server's)."""
        return isinstance(error, psycopg.Error | sqlite3.Error)

    def missing_table(self, error: BaseException, *tables: str) -> bool:
        """True if `error` says one of `tables` does not exist."""
        text = self._missing_table_text(error)
        return text is not None and any(
            re.search(rf"\b{re.escape(table)}\b", text) for table in tables
        )

    @abstractmethod
    def _missing_table_text(self, error: BaseException) -> str | None:
        """The text of `error` if it says a table does not exist, else None."""

    def create_table(self, table: "Table") -> list[str]:
        columns = [
            f"{c.name} {self.types[c.type]}{'' if c.nullable else ' NOT NULL'}"
            for c in table.columns
        ]
        if table.primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        columns += [f"UNIQUE ({', '.join(unique)})" for unique in table.unique]
        statements = [f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(columns)})"]
        for index in table.indexes:
            names = [f"{name}{self._pattern_ops(index)}" for name in index.columns]
            where = f" WHERE {index.where}" if index.where else ""
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {index.name} ON {table.name}"
                f" ({', '.join(names)}){where}"
            )
        return statements

    def _pattern_ops(self, index: "Index") -> str:
        return ""

    def schema_lock(self, tx: "Tx") -> None:  # noqa: B027 - a no-op unless the dialect needs it
        """Serialise schema creation across processes."""

    def notify(self, tx: "Tx", channel: str, payload: str) -> None:  # noqa: B027 - optional
        """Send a notification on commit, if the database has them."""


class PostgresDialect(Dialect):
    name = "postgresql"
    placeholder = "%s"
    types: ClassVar[Mapping[str, str]] = {
        "uuid": "uuid",
        "text": "text",
        "int": "integer",
        "bigint": "bigint",
        "bool": "boolean",
        "timestamptz": "timestamptz",
        "date": "date",
        "json": "json",
        "serial": "bigserial",
    }
    for_update = " FOR UPDATE"

    def adapt(self, value: object) -> object:
        return value

    def is_infrastructure_error(self, error: BaseException) -> bool:
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)

    def _missing_table_text(self, error: BaseException) -> str | None:
        # by the error code: the server's text follows its `lc_messages`
        if not isinstance(error, psycopg.errors.UndefinedTable):
            return None
        return error.diag.message_primary or str(error)

    def _pattern_ops(self, index: "Index") -> str:
        return " text_pattern_ops" if index.prefix_search else ""

    def schema_lock(self, tx: "Tx") -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('strata read models schema'))")

    def notify(self, tx: "Tx", channel: str, payload: str) -> None:
        tx.execute("SELECT pg_notify(?, ?)", [channel, payload])


class SQLiteDialect(Dialect):
    name = "sqlite"
    placeholder = "?"
    types: ClassVar[Mapping[str, str]] = {
        "uuid": "TEXT",
        "text": "TEXT",
        "int": "INTEGER",
        "bigint": "INTEGER",
        "bool": "INTEGER",
        "timestamptz": "TEXT",
        "date": "TEXT",
        "json": "TEXT",
        "serial": "INTEGER",
    }
    for_update = ""  # BEGIN IMMEDIATE already holds the database's write lock

    _INFRASTRUCTURE = ("locked", "busy", "disk", "unable to open", "readonly")

    def adapt(self, value: object) -> object:
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, datetime):
            return utc_text(value)
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, bool):
            return int(value)
        return value

    def is_infrastructure_error(self, error: BaseException) -> bool:
        if not isinstance(error, sqlite3.OperationalError):
            return False
        text = str(error).lower()
        return any(word in text for word in self._INFRASTRUCTURE)

    def _missing_table_text(self, error: BaseException) -> str | None:
        missing = isinstance(error, sqlite3.OperationalError)
        return str(error) if missing and str(error).startswith("no such table") else None
