"""Group commit: concurrent commands of one event store share a transaction.

Appends are bound by commits, not by rows: the table lock admits one writer at a time, and one
transaction of 100 events costs little more than one of a single event. A single writer thread
takes every unit of work waiting in its queue (up to ``max_batch``) and saves them together. If
the shared transaction conflicts (two commands raced on one aggregate, a unique value was taken,
an idempotency key repeated) it falls back to saving each unit alone, so only the units that
really conflict fail, each with its own error.
"""

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import RecordConflictError, Recording

from domain.ports import SideRecords, UnitOfWork
from domain.service import CommandService

Recordings = list[Recording[Any]]


@dataclass
class _Pending:
    unit: UnitOfWork
    future: "Future[Recordings]" = field(default_factory=Future)


_STOP = None


class GroupCommitter:
    def __init__(self, app: CommandService, *, max_batch: int = 256) -> None:
        self._app = app
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self.transactions = 0
        """Shared transactions attempted; with `units`, read by the metrics at scrape time."""
        self.units = 0
        self._thread = threading.Thread(
            target=self._run, name=f"group-commit-{app.name}", daemon=True
        )

    def start(self) -> "GroupCommitter":
        self._thread.start()
        return self

    def submit(self, unit: UnitOfWork) -> "Future[Recordings]":
        pending = _Pending(unit)
        self._queue.put(pending)
        return pending.future

    def commit(self, unit: UnitOfWork) -> Recordings:
        return self.submit(unit).result()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stopping = self._drain(first)
            self._commit_batch(batch)
            if stopping:
                return

    def _drain(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit_batch(self, batch: list[_Pending]) -> None:
        self.transactions += 1
        self.units += len(batch)
        if len(batch) == 1:
            self._commit_alone(batch[0])
            return
        try:
            recordings = self._save([pending.unit for pending in batch])
        except RecordConflictError:
            for pending in batch:
                self._commit_alone(pending)
            return
        except BaseException as error:  # noqa: BLE001 - handed to every waiting caller
            for pending in batch:
                pending.future.set_exception(error)
            return
        self._hand_out(batch, recordings)

    def _commit_alone(self, pending: _Pending) -> None:
        try:
            pending.future.set_result(self._save([pending.unit]))
        except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
            pending.future.set_exception(error)

    def _save(self, units: list[UnitOfWork]) -> Recordings:
        events = [event for unit in units for event in unit.events]
        side_records = SideRecords.combined([unit.side_records for unit in units])
        return self._app.save_events(events, side_records=side_records)

    @staticmethod
    def _hand_out(batch: list[_Pending], recordings: Recordings) -> None:
        """Recordings come back in the order of the events, so each unit takes its slice."""
        start = 0
        for pending in batch:
            end = start + len(pending.unit.events)
            pending.future.set_result(recordings[start:end])
            start = end
