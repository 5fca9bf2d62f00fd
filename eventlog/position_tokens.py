"""Position tokens: what a command answers (`position`) and a read waits for (`?position=`).

`<context>:<n>:p<NN>` names the event store position `n` of `context` and the partition `NN` of
the aggregate the command wrote (`eventlog.envelope.partition_of`). A read waits until that one
partition's checkpoint reaches `n`: with projector workers splitting the partitions, each
partition's checkpoint is exact for it whatever the others have reached. A bare `<context>:<n>`
(older clients, or typed by hand) is still accepted; it is compared with the lowest checkpoint
over all partitions, which is safe but held back by an idle partition.
"""

import re
from dataclasses import dataclass

from eventlog.envelope import PARTITIONS

TOKEN = re.compile(r"^([a-z][a-z0-9]*):([0-9]{1,18})(?::p([0-9]{2}))?$")


@dataclass(frozen=True)
class PositionToken:
    context: str
    value: int
    partition: int | None = None

    def __str__(self) -> str:
        return format_token(self.context, self.value, self.partition)


def format_token(context: str, value: int, partition: int | None = None) -> str:
    if partition is None:
        return f"{context}:{value}"
    return f"{context}:{value}:p{partition:02d}"


def parse_token(text: str) -> PositionToken:
    """ValueError unless `text` is `<context>:<n>` or `<context>:<n>:p<NN>` (NN < PARTITIONS)."""
    match = TOKEN.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not <context>:<n> or <context>:<n>:p<NN>")
    partition = None if match.group(3) is None else int(match.group(3))
    if partition is not None and partition >= PARTITIONS:
        raise ValueError(f"partition p{partition:02d} is not in p00..p{PARTITIONS - 1:02d}")
    return PositionToken(match.group(1), int(match.group(2)), partition)
