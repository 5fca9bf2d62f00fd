"""The backends-for-frontends: `bff.web` (a dashboard in one call) and `bff.mobile` (compact
answers with ETags), each its own process over the read API, with a breaker and a fallback per
downstream call (docs/bff.md)."""
