"""Password sign-ins per account: after a few attempts without a success, the account's password
is not checked for a while (a backoff that doubles, up to a cap).

The counts live in identity's own database, not in Redis: they are a security control, so they
must hold in the embedded mode (no Redis), across replicas, and while Redis is down (the rate
limits fail open there, this must not); and each attempt already costs a password hash, next to
which one small transaction is cheap.

An attempt is counted *before* its password is checked, in the same transaction that reads the
lock (a row lock in PostgreSQL, an immediate transaction in SQLite): parallel guesses cannot slip
past the lock, at most `max_failures` of them are ever checked per lockout. A success forgets
the account's count. Attempts are counted for any address, whether it has an account or not, so
a lockout tells nothing about which addresses have one.

What it cannot do: stop someone who knows a user's address from keeping that user's password
sign-in locked, at the price of `max_failures` requests per lockout. The backoff is capped
(`max_lockout_seconds`) and attempts during a lockout neither count nor extend it, so it ends
on its own; and it locks only the password grant: the user's refresh tokens keep working, so a
user signed in on any device stays signed in (docs/identity.md weighs this).
"""

from dataclasses import dataclass

from identity.database import Database
from identity.issuer import Clock, system_clock


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int
    """Attempts without a success that lock the account."""
    lockout_seconds: int
    """The first lockout; each next one of a series doubles."""
    max_lockout_seconds: int
    quiet_seconds: int
    """Without an attempt this long after the last one (or the lockout's end), a series ends:
    the count and the backoff start over."""

    def lockout(self, lockouts: int) -> int:
        """Seconds of the `lockouts`-th lockout of a series (1, 2, ...)."""
        return min(self.lockout_seconds << min(lockouts - 1, 30), self.max_lockout_seconds)


class SignInThrottled(Exception):
    """The account's password sign-in is locked for `retry_after` more seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many sign-in attempts for this account; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Count:
    attempts: int
    lockouts: int
    locked_until: int
    last_attempt_at: int


class SignInThrottle:
    def __init__(self, database: Database, policy: ThrottlePolicy, clock: Clock = system_clock):
        self._database = database
        self._policy = policy
        self._clock = clock

    def attempt(self, email_key: str) -> None:
        """Count an attempt to sign in as `email_key`, before its password is checked; raise
        `SignInThrottled` (counting nothing) while the account is locked."""
        now = self._clock()
        with self._database.transaction() as tx:
            tx.execute(
                "DELETE FROM identity_sign_in_attempts WHERE last_attempt_at < %s",
                (now - self._policy.quiet_seconds - self._policy.max_lockout_seconds,),
            )
            tx.execute(
                "INSERT INTO identity_sign_in_attempts VALUES (%s, 0, 0, 0, %s)"
                " ON CONFLICT DO NOTHING",
                (email_key, now),
            )
            # an update that changes nothing, to lock the row until the transaction ends
            [row] = tx.execute(
                "UPDATE identity_sign_in_attempts SET attempts = attempts WHERE email_key = %s"
                " RETURNING attempts, lockouts, locked_until, last_attempt_at",
                (email_key,),
            )
            count = self._next(_Count(*row), now)
            tx.execute(
                "UPDATE identity_sign_in_attempts SET attempts = %s, lockouts = %s,"
                " locked_until = %s, last_attempt_at = %s WHERE email_key = %s",
                (count.attempts, count.lockouts, count.locked_until, now, email_key),
            )

    def _next(self, count: _Count, now: int) -> _Count:
        if count.locked_until > now:
            raise SignInThrottled(count.locked_until - now)
        if now - max(count.last_attempt_at, count.locked_until) > self._policy.quiet_seconds:
            count = _Count(0, 0, 0, now)
        attempts = count.attempts + 1
        if attempts < self._policy.max_failures:
            return _Count(attempts, count.lockouts, count.locked_until, now)
        lockouts = count.lockouts + 1
        return _Count(0, lockouts, now + self._policy.lockout(lockouts), now)

    def succeeded(self, email_key: str) -> None:
        """The account's password was right: its count starts over."""
        with self._database.transaction() as tx:
            tx.execute("DELETE FROM identity_sign_in_attempts WHERE email_key = %s", (email_key,))
