"""The users context: user profiles."""
