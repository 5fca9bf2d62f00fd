"""`users_directory` and `user_hobbies`: searchable user rows (see docs/read-models.md).

`name_lower` and `hobby_lower` hold the caseless keys of the name and hobby
(`domain.values.caseless`, as the domain compares hobbies); the read API keys queries the same way.
"""

from domain.values import caseless
from eventlog.envelope import EventEnvelope
from projections.model import SqlProjection
from projections.rows import Rows
from readmodels import catalog


class UsersDirectory(SqlProjection):
    read_model = catalog.USERS_DIRECTORY

    def project(self, rows: Rows, event: EventEnvelope) -> None:
        if event.aggregate_type != "UserProfile":
            return
        self.require_schema(event)
        data, user = event.data, event.aggregate_id
        match event.event_type:
            case "Registered":
                rows.insert(
                    "users_directory",
                    {
                        "id": user,
                        "name": data["name"],
                        "name_lower": caseless(data["name"]),
                        "email": data["email"],
                        "active": True,
                        "version": event.aggregate_version,
                        "registered_at": event.timestamp,
                        "updated_at": event.timestamp,
                    },
                )
            case "Renamed":
                self._update(rows, event, name=data["name"], name_lower=caseless(data["name"]))
            case "EmailChanged":
                self._update(rows, event, email=data["email"])
            case "LocationChanged":
                self._update(rows, event, city=data["city"], country=data["country"])
            case "Deactivated" | "Reactivated":
                self._update(rows, event, active=event.event_type == "Reactivated")
            case "HobbyAdded":
                hobby = {"user_id": user, "hobby_lower": caseless(data["hobby"])}
                rows.insert("user_hobbies", {**hobby, "hobby": data["hobby"]})
                self._update(rows, event)
            case "HobbyRemoved":
                hobby = {"user_id": user, "hobby_lower": caseless(data["hobby"])}
                rows.delete("user_hobbies", hobby, what=f"hobby {data['hobby']!r} of user {user}")
                self._update(rows, event)

    @staticmethod
    def _update(rows: Rows, event: EventEnvelope, **columns: object) -> None:
        """Set columns and the version and update time."""
        rows.update(
            "users_directory",
            {"id": event.aggregate_id},
            set={**columns, "version": event.aggregate_version, "updated_at": event.timestamp},
            what=f"users_directory row {event.aggregate_id}",
        )
