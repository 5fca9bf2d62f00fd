"""A command's wait for a replica of another context to reach a position (`?position=users:57`).

The feeds are `write_api.replica_feeds`'."""

from typing import Annotated

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError

from eventlog.position_tokens import TOKEN, parse_token
from eventlog.replica_feeds import ReplicaFeed
from runtime.settings import CommonSettings

POSITION_HELP = (
    "Wait (bounded, `STRATA_REPLICA_WAIT_SECONDS`) until this service has taken in the event at"
    " this position of a context it follows, as a command of that context returned it: an order"
    " for a user registered a moment ago sends the registration's `position` (`users:<n>:p<NN>`;"
    " a replica follows every partition, so the partition changes nothing here)."
)
AfterPosition = Annotated[
    str | None,
    Query(alias="position", description=POSITION_HELP, pattern=TOKEN.pattern),
]


class ReplicaBehind(Exception):
    """The replica did not reach the position a command asked for in time."""

    def __init__(self, upstream: str, wanted: int, reached: int, waited: float) -> None:
        super().__init__(
            f"this service has taken in {upstream} events up to position {reached}, not yet"
            f" {wanted}, after waiting {waited:g} s; retry"
        )
        self.wanted = f"{upstream}:{wanted}"
        self.reached = f"{upstream}:{reached}"


async def wait_for_replica(request: Request, follower: str, token: str | None) -> None:
    """Return once the follower's replica holds the position `token` names (none: at once)."""
    if token is None:
        return
    parsed = parse_token(token)
    upstream = parsed.context
    feeds: dict[tuple[str, str], ReplicaFeed] = request.app.state.replica_feeds
    feed = feeds.get((follower, upstream))
    if feed is None:
        followed = sorted(up for (name, up) in feeds if name == follower)
        expected = " or ".join(f"`{up}:<n>`" for up in followed) or "none"
        message = f"{follower} follows no context {upstream!r}; a position here is {expected}"
        raise RequestValidationError(
            [{"loc": ("query", "position"), "msg": message, "type": "value_error"}]
        )
    settings: CommonSettings = request.app.state.settings
    timeout = settings.replica_wait_seconds
    wanted = parsed.value
    try:
        reached = await feed.reach(wanted, timeout)
    except TimeoutError:
        reached = False
    if not reached:
        raise ReplicaBehind(upstream, wanted, feed.position(), timeout)
