"""Operating on dead letters: list, show, retry, skip (the replay CLI's DLQ commands).

- **listing**, **show**: parked (or retried, skipped) events, by id.
- **retry**: apply the parked event again, then the events parked behind it (same projection
  and aggregate), in position order, each exactly once and without moving checkpoints; stops at
  the first that fails again, which stays parked with its new error. Only the first parked event
  of an aggregate can be retried, so per-aggregate order holds. (The projector retries a parked
  event by itself a few times first: see :mod:`projections.retrying`.)
- **skip**: give up on a parked event. The events parked behind it stay parked until retried.
  A skip holds for every re-projection of that version and for the versions a rebuild makes
  from it (see :mod:`projections.dead_letters`).
"""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from redis import Redis

from contexts.settings import Settings
from projections import dead_letters
from projections.active import ActiveTarget
from projections.dead_letters import DeadLetter, Status
from projections.engine import Target
from projections.model import Projection
from projections.retrying import RetryResult, read_chain, retry_chain
from projections.targets import following_targets
from readmodels.sql import READ_DATABASE, PostgresDatabase, SqlDatabase, SQLiteDatabase


class DeadLetterError(Exception):
    """The request cannot be carried out (unknown id, not parked, out of order)."""


class DeadLetterAdmin:
    def __init__(self, db: SqlDatabase, targets: Iterable[Target]) -> None:
        self._db = db
        chosen = list(targets)
        self._targets = {(t.projection.name, t.projection.version): t for t in chosen}
        self._following = {t.projection.name: t for t in chosen if isinstance(t, ActiveTarget)}

    def listing(
        self,
        *,
        projection: str | None = None,
        status: Status | None = "parked",
        after_id: int = 0,
        limit: int = 100,
    ) -> list[DeadLetter]:
        with self._db.transaction(write=False) as tx:
            return dead_letters.listing(
                tx, projection=projection, status=status, after_id=after_id, limit=limit
            )

    def show(self, letter_id: int) -> DeadLetter:
        with self._db.transaction(write=False) as tx:
            letter = dead_letters.get(tx, letter_id)
        if letter is None:
            raise DeadLetterError(f"no dead letter {letter_id}")
        return letter

    def retry(self, letter_id: int) -> RetryResult:
        letter = self._parked(letter_id)
        target = self._targets.get((letter.projection, letter.version)) or self._following.get(
            letter.projection
        )
        if target is None:
            raise DeadLetterError(f"projection {letter.projection}:v{letter.version} is not loaded")
        chain = read_chain(self._db, letter)
        if chain[0].id != letter.id:
            raise DeadLetterError(
                f"dead letter {letter_id} is blocked by {chain[0].id} (position"
                f" {chain[0].position}) of the same aggregate: retry or skip that one first"
            )
        return retry_chain(self._db, target, letter)

    def skip(self, letter_id: int) -> DeadLetter:
        self._parked(letter_id)
        with self._db.transaction() as tx:
            if not dead_letters.mark(tx, letter_id, "skipped", only_if="parked"):
                raise DeadLetterError(f"dead letter {letter_id} is no longer parked")
        return self.show(letter_id)

    def _parked(self, letter_id: int) -> DeadLetter:
        letter = self.show(letter_id)
        if letter.status != "parked":
            raise DeadLetterError(f"dead letter {letter_id} is {letter.status}, not parked")
        return letter


@contextmanager
def open_admin(
    settings: Settings, projections: Sequence[Projection] | None = None
) -> Iterator[DeadLetterAdmin]:
    """The dead letters of the read models the settings select (for the replay CLI): the
    PostgreSQL read database and Redis when both are set, else `<data_dir>/read.sqlite`;
    `projections` are those that can be retried (the registered contexts' by default)."""
    if settings.read_database_url and settings.redis_url:
        db: SqlDatabase = PostgresDatabase(settings.read_database_url)
        redis = Redis.from_url(settings.redis_url)
        try:
            yield DeadLetterAdmin(db, following_targets(db, redis, projections=projections))
        finally:
            redis.close()
            db.close()
        return
    db = SQLiteDatabase(settings.data_dir / READ_DATABASE)
    try:
        yield DeadLetterAdmin(db, following_targets(db, projections=projections))
    finally:
        db.close()
