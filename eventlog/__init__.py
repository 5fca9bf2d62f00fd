"""The shared backbone: settings, event-store construction and recorder extensions, group commit."""
