"""The domain: aggregates, their events and rules, and the per-service command handlers.

Nothing here knows about HTTP, SQL, NATS, Redis or settings; infrastructure reaches the
command handlers only through the small ports in :mod:`domain.ports`.
"""
