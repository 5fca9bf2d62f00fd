"""The embedded default: the whole system in one process on SQLite files.

The write API, the fan-out into the read models and the read API (under `/read`), composed
here because the write API and the read API must not know each other.
"""
