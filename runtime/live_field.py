"""The mark of a settings field that a running service takes new values of (hot reload)."""

from typing import Any

LIVE: dict[str, Any] = {"live": True}
"""The `json_schema_extra` of a field a running service takes a new value of (hot reload)."""
