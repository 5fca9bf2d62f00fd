"""The REST read API over the read models (not built yet: see the fan-out issue)."""
