"""A context's reactions to another context's events: choreography, with no orchestrator.

A context declares a `Reaction`: the upstream context, a name, and `react`, which runs the
context's own commands for an upstream event (orders cancels the open orders of a user who
was deactivated). Its intake runs `react` for each event after its checkpoint, then moves the
checkpoint (kept beside the replicas' ones, under `<upstream>:<name>`). A crash between the two
runs `react` again for the same events, so a reaction must be idempotent: commands with
idempotency keys derived from the event, which the store answers with the first outcome.

A reaction that acts on some kinds of events only names them (`kinds`): a feed that reads the
upstream's store then reads and decodes those alone, and its checkpoint still moves past the
others. `react` may be given others all the same (a JetStream feed brings every event).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from domain.service import CommandService
from eventlog.envelope import EventEnvelope
from eventlog.log_pages import Kinds
from eventlog.replicas import ReplicaCheckpoint, ReplicaStore, page_end

React = Callable[[CommandService, EventEnvelope], None]
"""(the reacting context's application, an upstream event): run its commands, if any."""


@dataclass(frozen=True)
class Reaction:
    upstream: str
    name: str
    react: React
    kinds: Kinds = None
    """The kinds of events `react` acts on (None: it may act on any)."""

    @property
    def checkpoint_key(self) -> str:
        return f"{self.upstream}:{self.name}"


class ReactionIntake:
    """Takes an upstream's events in by reacting to them: an `eventlog.replicas.Intake`."""

    def __init__(self, application: CommandService, store: ReplicaStore, reaction: Reaction):
        self._application = application
        self._store = store
        self._reaction = reaction

    @property
    def upstream(self) -> str:
        return self._reaction.upstream

    @property
    def kinds(self) -> Kinds:
        return self._reaction.kinds

    def checkpoint(self) -> ReplicaCheckpoint:
        return self._store.replica_checkpoint(self._reaction.checkpoint_key)

    def take_in(
        self, envelopes: Sequence[EventEnvelope], stream_seq: int = 0, *, reached: int = 0
    ) -> ReplicaCheckpoint | None:
        end = page_end(envelopes, reached)
        if not end:
            return None
        if envelopes:
            held = self.checkpoint().position
            for envelope in envelopes:
                if envelope.position > held:
                    self._reaction.react(self._application, envelope)
        checkpoint = ReplicaCheckpoint(end, stream_seq)
        self._store.apply_replica_changes(self._reaction.checkpoint_key, [], checkpoint)
        return checkpoint
