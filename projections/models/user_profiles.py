"""`user_profiles`: one hash per user, `user:<id>` (`readmodels.keys`, docs/read-models.md)."""

from collections.abc import Sequence

from eventlog.envelope import EventEnvelope
from projections.document_ops import AppendToList, Op, RemoveFromList, SetFields, Value
from projections.model import OpsProjection
from readmodels import catalog, keys
from readmodels.formats import utc_text


class UserProfiles(OpsProjection):
    read_model = catalog.USER_PROFILES

    def operations(self, event: EventEnvelope) -> Sequence[Op]:
        if event.aggregate_type != "UserProfile":
            return []
        self.require_schema(event)
        key = keys.user_profile_key(event.aggregate_id)
        stamp: dict[str, Value] = {
            "version": str(event.aggregate_version),
            "position": str(event.position),
            "updated_at": utc_text(event.timestamp),
        }
        data = event.data
        ops: list[Op]
        match event.event_type:
            case "Registered":
                fields: dict[str, Value] = {
                    "id": str(event.aggregate_id),
                    "name": data["name"],
                    "email": data["email"],
                    "hobbies": "[]",
                    "active": "1",
                    "registered_at": utc_text(event.timestamp),
                }
                ops = [SetFields(key, fields | stamp)]
            case "Renamed":
                ops = [SetFields(key, {"name": data["name"]} | stamp)]
            case "EmailChanged":
                ops = [SetFields(key, {"email": data["email"]} | stamp)]
            case "HobbyAdded":
                ops = [AppendToList(key, "hobbies", data["hobby"]), SetFields(key, stamp)]
            case "HobbyRemoved":
                ops = [RemoveFromList(key, "hobbies", data["hobby"]), SetFields(key, stamp)]
            case "LocationChanged":
                ops = [SetFields(key, {"city": data["city"], "country": data["country"]} | stamp)]
            case "Deactivated" | "Reactivated":
                active = "1" if event.event_type == "Reactivated" else "0"
                ops = [SetFields(key, {"active": active} | stamp)]
            case _:
                ops = []
        return ops
