"""The point-in-time replay CLI and rebuild jobs (not built yet: see the replay issue)."""
