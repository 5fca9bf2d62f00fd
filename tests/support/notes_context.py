"""A bounded context declared in the test tree alone: notes, one aggregate, one command, one
event. Registered with `REGISTRY.with_(NOTES)`, it proves that a context needs nothing but its
own code and its declaration to get a store, a write endpoint, a relay stream and replay."""

from typing import ClassVar

from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from contexts.registry import BoundedContext
from domain.aggregate import EventSourcedAggregate
from domain.service import CommandContext, CommandResult, CommandService, Decision
from domain.values import bounded_text
from eventlog.stores import Services
from write_api.command_http import Headers, accepted, run_blocking
from write_api.schemas import Accepted, Command


class Note(EventSourcedAggregate):
    class Written(Aggregate.Created):
        class_version = 1
        text: str

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def write(cls, text: str) -> "Note":
        return cls._create(cls.Written, text=bounded_text(text, field="text", max_length=200))


class NotesService(CommandService):
    name: ClassVar[str] = "notes"  # type: ignore[misc]

    def write(self, ctx: CommandContext, text: str) -> CommandResult:
        return self.create(ctx, lambda: Decision(Note.write(text)))


class WriteNote(Command):
    text: str


router = APIRouter(prefix="/notes", tags=["notes"])


@router.post("", status_code=201, response_model=Accepted)
async def write_note(body: WriteNote, request: Request, headers: Headers) -> JSONResponse:
    peers: Services = request.app.state.services
    ctx = headers.context(request, body)
    notes = peers.application(NotesService)
    result = await run_blocking(request, lambda: notes.write(ctx, body.text))
    return accepted(NotesService.name, result, headers, created=True)


NOTES = BoundedContext(name="notes", application=NotesService, aggregates=(Note,), router=router)
