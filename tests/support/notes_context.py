"""A bounded context declared in the test tree alone: notes, one aggregate, one command, one
event, one read model (`notes`, a table) and one read endpoint. Registered with
`REGISTRY.with_(NOTES)`, it proves that a context needs nothing but its own code and its
declaration to get a store, a write endpoint, a relay stream, its projection in the embedded
fan-out and the stack's projector, its read endpoint, and replay."""

from datetime import datetime
from typing import Annotated, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from contexts.registry import BoundedContext
from domain.aggregate import EventSourcedAggregate
from domain.service import CommandContext, CommandResult, CommandService, Decision
from domain.values import bounded_text
from eventlog.envelope import EventEnvelope
from eventlog.stores import Services
from projections.model import SqlProjection
from projections.rows import Rows
from read_api.params import Uuid
from read_api.reading import Reader, ReadRoute, reads
from read_api.stores import ReadStores
from readmodels.catalog import ReadModel
from readmodels.formats import stored_time
from readmodels.sql import Column, Row, Table
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


# -- the read side: a table of notes, its projection and its read endpoint -------------------

NOTES_TABLE = Table(
    "notes",
    (
        Column("id", "uuid", nullable=False),
        Column("text", "text", nullable=False),
        Column("written_at", "timestamptz", nullable=False),
        Column("version", "int", nullable=False),
    ),
    primary_key=("id",),
)
NOTES_READ_MODEL = ReadModel("notes", ("notes",), "tables", (NOTES_TABLE,))


class NotesList(SqlProjection):
    read_model = NOTES_READ_MODEL

    def project(self, rows: Rows, event: EventEnvelope) -> None:
        if event.aggregate_type != "Note" or event.event_type != "Written":
            return
        self.require_schema(event)
        rows.insert(
            "notes",
            {
                "id": event.aggregate_id,
                "text": event.data["text"],
                "written_at": event.timestamp,
                "version": event.aggregate_version,
            },
        )


class NoteView(BaseModel):
    id: UUID
    text: str
    written_at: datetime
    version: int


read_router = APIRouter(prefix="/notes", tags=["notes"], route_class=ReadRoute)


@read_router.get("/{note_id}", response_model=NoteView)
async def read_note(
    note_id: Annotated[Uuid, Path(description="The note's id.")],
    reader: Annotated[Reader, reads(NOTES_READ_MODEL)],
) -> NoteView:
    """One note, from the `notes` read model."""

    def note(stores: ReadStores) -> Row | None:
        with stores.relational.reading() as tx:
            return tx.query_one(
                "SELECT text, written_at, version FROM notes WHERE id = ?", [note_id]
            )

    found = await reader.read(note)
    if found is None:
        raise reader.not_found(f"no note {note_id} in the read model")
    text, written_at, version = found
    return NoteView(id=note_id, text=text, written_at=stored_time(written_at), version=version)


NOTES = BoundedContext(
    name="notes",
    application=NotesService,
    aggregates=(Note,),
    router=router,
    projections=(NotesList,),
    read_router=read_router,
)
