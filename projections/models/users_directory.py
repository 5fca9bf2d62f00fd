"""`users_directory` and `user_hobbies`: searchable user rows (see docs/read-models.md).

`name_lower` and `hobby_lower` hold `str.lower()` (the read API lower-cases queries the same way).
"""

from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.models.rows import change_one
from readmodels import catalog
from readmodels.sql import Tx


class UsersDirectory(SqlProjection):
    read_model = catalog.USERS_DIRECTORY

    def apply(self, tx: Tx, event: EventEnvelope) -> None:
        if event.aggregate_type != "UserProfile":
            return
        self.require_schema(event)
        data, user = event.data, event.aggregate_id
        match event.event_type:
            case "Registered":
                tx.execute(
                    "INSERT INTO users_directory (id, name, name_lower, email, city, country,"
                    " active, version, registered_at, updated_at)"
                    " VALUES (?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?)",
                    [
                        user,
                        data["name"],
                        data["name"].lower(),
                        data["email"],
                        True,
                        event.aggregate_version,
                        event.timestamp,
                        event.timestamp,
                    ],
                )
            case "Renamed":
                self._update(tx, event, name=data["name"], name_lower=data["name"].lower())
            case "EmailChanged":
                self._update(tx, event, email=data["email"])
            case "LocationChanged":
                self._update(tx, event, city=data["city"], country=data["country"])
            case "Deactivated" | "Reactivated":
                self._update(tx, event, active=event.event_type == "Reactivated")
            case "HobbyAdded":
                tx.execute(
                    "INSERT INTO user_hobbies (user_id, hobby_lower, hobby) VALUES (?, ?, ?)",
                    [user, data["hobby"].lower(), data["hobby"]],
                )
                self._update(tx, event)
            case "HobbyRemoved":
                change_one(
                    tx,
                    "DELETE FROM user_hobbies WHERE user_id = ? AND hobby_lower = ?",
                    [user, data["hobby"].lower()],
                    f"hobby {data['hobby']!r} of user {user}",
                )
                self._update(tx, event)

    @staticmethod
    def _update(tx: Tx, event: EventEnvelope, **columns: object) -> None:
        """Set columns (names from this module only) and the version and update time."""
        assignments = "".join(f"{name} = ?, " for name in columns)
        change_one(
            tx,
            f"UPDATE users_directory SET {assignments}version = ?, updated_at = ?"  # noqa: S608
            " WHERE id = ?",
            [*columns.values(), event.aggregate_version, event.timestamp, event.aggregate_id],
            f"users_directory row {event.aggregate_id}",
        )
