"""Projectors that build read models from the event log (not built yet: see the fan-out issue)."""
