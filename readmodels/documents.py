"""The document-shaped read models in a SQL database (the embedded mode, in place of Redis):
the generic tables `rm_hashes(projection, version, key, field, value)` and
`rm_sorted_sets(projection, version, key, member, score)`, keyed like Redis without the
`rm:{<model>:v<k>}:` prefix (`readmodels.keys`). Projectors write through `DocumentTables`, the
read API reads through it."""

from readmodels.catalog import ReadModel
from readmodels.sql import Tx


class DocumentTables:
    """One read model's documents (at the version it names), inside a transaction."""

    def __init__(self, tx: Tx, model: ReadModel) -> None:
        self._tx = tx
        self._scope = [model.name, model.version]

    def hash(self, key: str) -> dict[str, str]:
        """Every field of a hash (empty when there is none)."""
        rows = self._tx.query(
            "SELECT field, value FROM rm_hashes WHERE projection = ? AND version = ? AND key = ?",
            [*self._scope, key],
        )
        return {str(field): str(value) for field, value in rows}

    def field(self, key: str, field: str) -> str | None:
        row = self._tx.query_one(
            "SELECT value FROM rm_hashes"
            " WHERE projection = ? AND version = ? AND key = ? AND field = ?",
            [*self._scope, key, field],
        )
        return None if row is None else str(row[0])

    def top(self, key: str, limit: int) -> list[tuple[str, int]]:
        """The highest scored members of a sorted set, ties in the order of Redis ZREVRANGE
        (by member, descending)."""
        rows = self._tx.query(
            "SELECT member, score FROM rm_sorted_sets"
            " WHERE projection = ? AND version = ? AND key = ?"
            " ORDER BY score DESC, member DESC LIMIT ?",
            [*self._scope, key, limit],
        )
        return [(str(member), int(score)) for member, score in rows]

    def set_field(self, key: str, field: str, value: str) -> None:
        self._tx.execute(
            "INSERT INTO rm_hashes (projection, version, key, field, value) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (projection, version, key, field) DO UPDATE SET value = excluded.value",
            [*self._scope, key, field, value],
        )

    def increment_field(self, key: str, field: str, amount: int) -> None:
        self._tx.execute(
            "INSERT INTO rm_hashes (projection, version, key, field, value) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (projection, version, key, field) DO UPDATE SET value ="
            " CAST(CAST(rm_hashes.value AS bigint) + CAST(excluded.value AS bigint) AS text)",
            [*self._scope, key, field, str(amount)],
        )

    def increment_score(self, key: str, member: str, amount: int) -> None:
        self._tx.execute(
            "INSERT INTO rm_sorted_sets (projection, version, key, member, score)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (projection, version, key, member)"
            " DO UPDATE SET score = rm_sorted_sets.score + excluded.score",
            [*self._scope, key, member, amount],
        )
