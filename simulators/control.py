"""What both provider simulators share: faults under control, operations once per idempotency
key, the ledger of what was recorded, and the process around the app.

Every operation endpoint first counts the request and applies the faults of `/control`: an
outage answers 503 at once; otherwise the request waits `latency_ms`, then fails with a 503 at
`error_rate` (before anything is recorded). An operation then runs once per `Idempotency-Key`:
the key again with the same request returns the first answer, with another request a 422.
Refusals of the rules (409, 404, 422) are not recorded, so a corrected request may reuse the key.
The ledger is a SQLite file (`simulators.ledger`), used off the event loop by one thread at a
time; the control, and the count of requests, are the process's, in memory.
"""

import asyncio
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Generic, NoReturn, TypeVar

import typer
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from runtime.cli import CommandFailed, run
from runtime.http.head import HeadAsGet
from runtime.http.json_bodies import JsonRoute, loads_unique
from runtime.http.problem_types import SERVICE_UNAVAILABLE
from runtime.http.problems import install_problem_handlers, problem
from runtime.http.telemetry import NO_NATIVE_TELEMETRY
from runtime.http.unreadable_requests import ProblemHttpProtocol
from runtime.server_process import configure_server_process
from runtime.settings import CommonSettings, load_settings
from simulators.ledger import Json, Ledger, LedgerUnusable, SimulatorError

log = logging.getLogger("strata.simulator")

AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$"
Amount = Annotated[str, StringConstraints(pattern=AMOUNT_PATTERN)]
"""An amount of money as on the wire: an ASCII decimal string with at most two decimals."""
IdempotencyKey = Annotated[
    str, Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[!-~]+$")
]


class Faults(BaseModel):
    """The faults every simulator can be told to show (`PUT /control`)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "yes" is not an outage

    latency_ms: int = Field(0, ge=0, le=60_000, description="Delay before each operation.")
    error_rate: float = Field(
        0, ge=0, le=1, description="Share of operations answered 503 without being performed."
    )
    outage: bool = Field(False, description="Answer every operation 503 at once.")


ControlT = TypeVar("ControlT", bound=Faults)
LedgerT = TypeVar("LedgerT", bound=Ledger)
T = TypeVar("T")


class Simulator(Generic[ControlT, LedgerT]):
    """A simulator's state: its control and the requests it counted (on the event loop), and
    its ledger (in worker threads, one at a time)."""

    def __init__(self, control_type: type[ControlT], ledger: LedgerT) -> None:
        self.control_type = control_type
        self.control = control_type()
        self.requests = 0
        self.ledger = ledger
        self._lock = threading.Lock()

    async def reset(self) -> None:
        self.control = self.control_type()
        self.requests = 0
        await self._locked(lambda ledger: ledger.forget())

    async def admit(self) -> None:
        """A dependency of every operation: count it, then apply the faults."""
        self.requests += 1
        faults = self.control
        if faults.outage:
            raise SimulatorError(SERVICE_UNAVAILABLE, "outage (simulated)")
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if random.random() < faults.error_rate:
            raise SimulatorError(SERVICE_UNAVAILABLE, "failure (simulated)")

    async def perform(
        self, key: str, request: Json, operation: Callable[[LedgerT, ControlT], Json]
    ) -> Json:
        """The operation's answer, once it and its key are committed to the ledger."""
        control = self.control
        return await self._locked(
            lambda ledger: ledger.once(key, request, lambda: operation(ledger, control))
        )

    async def close(self) -> None:
        await self._locked(lambda ledger: ledger.close())

    async def summary(self) -> Json:
        recorded = await self._locked(lambda ledger: ledger.summary())
        return {"requests": self.requests, **recorded}

    async def _locked(self, use: Callable[[LedgerT], T]) -> T:
        def locked() -> T:
            with self._lock:
                return use(self.ledger)

        return await asyncio.to_thread(locked)


def operations_router(simulator: Simulator[Any, Any]) -> APIRouter:
    """The router of a simulator's operations: every request goes through `admit` first."""
    return APIRouter(
        dependencies=[Depends(simulator.admit)], tags=["operations"], route_class=JsonRoute
    )


def create_simulator_app(title: str, simulator: Simulator[Any, Any], router: APIRouter) -> FastAPI:
    """The app of a simulator: its operations, `/control`, `/healthz` and `/readyz`; its ledger
    is closed when it stops."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await simulator.close()

    app = FastAPI(
        title=title,
        lifespan=lifespan,
        description=__doc__,
        redirect_slashes=False,
        telemetry=NO_NATIVE_TELEMETRY,
    )
    install_problem_handlers(app, log)
    app.add_middleware(HeadAsGet)

    async def on_refused(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, SimulatorError)
        return problem(request, error.kind, str(error), status=error.status)

    app.add_exception_handler(SimulatorError, on_refused)
    app.include_router(router)
    app.include_router(_control_router(simulator))

    @app.get("/healthz", tags=["health"])
    @app.get("/readyz", tags=["health"])
    async def healthz() -> Json:
        """The simulator is up (it depends on nothing)."""
        return {"status": "ok"}

    return app


def _control_router(simulator: Simulator[Any, Any]) -> APIRouter:
    router = APIRouter(prefix="/control", tags=["control"])

    @router.get("")
    async def get_control() -> Json:
        """The faults and rules in force."""
        control: Faults = simulator.control
        return control.model_dump(mode="json")

    @router.put("")
    async def put_control(request: Request) -> Json:
        """Replace the faults and rules (a field left out takes its default)."""
        body = await request.body()
        try:
            control: Faults = simulator.control_type.model_validate_json(body)
        except ValidationError as error:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
            ) from None
        loads_unique(body)  # JSON, as validated: a repeated member name is refused
        simulator.control = control
        log.info("control changed", extra={"control": control.model_dump(mode="json")})
        return control.model_dump(mode="json")

    @router.get("/ledger")
    async def get_ledger() -> Json:
        """Requests received, operations recorded (once per key), and each record's state."""
        return await simulator.summary()

    @router.post("/reset")
    async def reset() -> Json:
        """Forget every record and request, and go back to the default control."""
        await simulator.reset()
        log.info("reset")
        return {"status": "reset"}

    return router


def simulator_main(
    prog: str,
    what: str,
    create_app: Callable[[Path], FastAPI],
    port_of: Callable[[CommonSettings], int],
    ledger_of: Callable[[CommonSettings], Path],
) -> Callable[[list[str] | None], NoReturn]:
    """The console script of a simulator: `prog [--host HOST] [--port PORT]`, its ledger in the
    file of `ledger_of(settings)`.

    Exit codes: 0 stopped by a signal; 1 invalid settings or a ledger that cannot be opened; 2
    bad arguments (one line)."""
    cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @cli.command(help=f"Run the {what} simulator until stopped.")
    def serve(
        host: Annotated[
            str | None, typer.Option(help="Address to listen on (default: STRATA_HOST).")
        ] = None,
        port: Annotated[
            int | None, typer.Option(min=1, max=65535, help="Port (default: from the settings).")
        ] = None,
    ) -> None:
        settings = load_settings(prog, CommonSettings)
        configure_server_process(settings.log_level)
        host = host or settings.host
        port = port or port_of(settings)
        ledger = ledger_of(settings)
        try:
            Ledger(ledger).check()
        except LedgerUnusable as error:
            raise CommandFailed(str(error)) from None
        print(f"strata {what} simulator on http://{host}:{port} (docs: /docs)", flush=True)
        print(f"  ledger: {ledger.resolve()}", flush=True)
        uvicorn.run(
            create_app(ledger),
            host=host,
            port=port,
            log_config=None,
            http=ProblemHttpProtocol,
            access_log=False,
        )

    def main(argv: list[str] | None = None) -> NoReturn:
        run(cli, prog, argv)

    return main
