"""The event store: recorders and group commit, store construction, the event envelope, and the
relay that publishes the log to JetStream."""
