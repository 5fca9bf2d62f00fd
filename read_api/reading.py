"""One endpoint's read: wait for a requested position, query the stores, say what it reflects.

Routes declare the projections behind them with `reads(...)`; the dependency takes the
`position` and `wait` parameters and yields a `Reader`. Its `read` first waits for the position,
so that no request waits before every one of its parameters is known to be valid, then runs the
store query and sets `X-Read-Position` to the checkpoints read just before the data (so the
answer reflects at least those positions). Read routes use `ReadRoute`: metered, with their query
string checked (`read_api.query_string`).
"""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, Request, Response
from starlette.exceptions import HTTPException

from domain.errors import InvalidValue
from read_api.metrics import MeteredRoute
from read_api.params import Position, PositionQuery, WaitQuery, parse_position, wait_seconds
from read_api.positions import position_header
from read_api.problems import READ_POSITION, InvalidParameter, PositionNotReached
from read_api.resources import ReadSide, read_side
from read_api.stores import ReadStores
from readmodels.catalog import ReadModel
from readmodels.checkpoints import Positions
from readmodels.partition_checkpoints import partition_slot
from runtime.http.query_string import QueryCheckedRoute
from runtime.rate_limits import RateLimitedRoute

T = TypeVar("T")


class ReadRoute(MeteredRoute, QueryCheckedRoute, RateLimitedRoute):
    """The route class of every read endpoint: metered, query string checked (in that order, so
    the metrics count the 422s of the check too), and rate limited per caller."""


class Reader:
    def __init__(
        self,
        side: ReadSide,
        projections: tuple[ReadModel, ...],
        response: Response,
        awaited: tuple[Position, float] | None = None,
    ):
        self.side = side
        self._projections = projections
        self._response = response
        self._awaited = awaited
        """The position to wait for before the first read, with the timeout."""
        self._header = ""

    async def _wait_for(self, position: Position, timeout: float) -> None:
        behind = [p for p in self._projections if position.context in p.contexts]
        if not behind:
            return  # nothing behind this endpoint folds that context's events

        slot = position.context
        if position.partition is not None:
            slot = partition_slot(position.context, position.partition)

        def reached(positions: Positions) -> bool:
            return all(positions.get((p.name, slot), 0) >= position.value for p in behind)

        side, why = self.side, ""
        if side.waiters >= side.settings.read_max_waiting:
            # Overload: no queue of waiters; one look at the checkpoints, then the 503 at once.
            timeout, why = 0.0, f"{side.waiters} reads wait already, the most allowed"
        side.waiters += 1
        try:
            with side.metrics.waiting.track_inprogress():
                outcome = await side.watch.wait_until(reached, timeout)
        finally:
            side.waiters -= 1
        side.metrics.waits.labels(_outcome(outcome.reached, why)).inc()
        if not outcome.reached:
            header = position_header(outcome.positions, self._projections, side.contexts)
            replica = None if why else await side.replica_status()
            why = why or (f"the read replica {replica.describe()}" if replica else "")
            raise PositionNotReached(str(position), header, timeout, why)

    async def read(self, query: Callable[[ReadStores], T]) -> T:
        if self._awaited is not None:
            position, timeout = self._awaited
            self._awaited = None
            await self._wait_for(position, timeout)
        stores = self.side.stores

        def checkpoints_then_data() -> tuple[Positions, T]:
            return stores.positions(self._projections), query(stores)

        positions, value = await self.side.runner.run(checkpoints_then_data)
        self._header = position_header(positions, self._projections, self.side.contexts)
        self._response.headers[READ_POSITION] = self._header
        return value

    def not_found(self, detail: str) -> HTTPException:
        headers = {READ_POSITION: self._header} if self._header else None
        return HTTPException(404, detail, headers=headers)


def _outcome(reached: bool, refused: str) -> str:
    if reached:
        return "reached"
    return "refused" if refused else "timeout"


def _position(text: str, side: ReadSide) -> Position:
    """The position of one of the app's contexts (its syntax was checked with the parameters)."""
    try:
        return parse_position(text, side.contexts)
    except InvalidValue as error:
        raise InvalidParameter("position", str(error)) from None


def reads(*projections: ReadModel) -> Any:
    """A dependency giving a `Reader` over `projections`, after any read-your-writes wait."""

    async def reader(
        request: Request,
        response: Response,
        position: PositionQuery = None,
        wait: WaitQuery = None,
    ) -> Reader:
        side = read_side(request)
        timeout = wait_seconds(wait, side.settings)
        awaited = None if position is None else (_position(position, side), timeout)
        return Reader(side, projections, response, awaited)

    return Depends(reader)
