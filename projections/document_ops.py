"""Document operations: what a document-shaped projection asks for, whatever stores it.

A projection turns one event into a short list of operations on keys (hashes and sorted sets).
The Redis executor runs them in one Lua call with the checkpoint; the SQL executor runs them on
the generic `rm_hashes` / `rm_sorted_sets` tables. Values an event does not carry (the user of an
order, when it is paid) are read with :class:`Bind` from a document the projection wrote earlier,
then used through :class:`Var` (a value) and :class:`Template` (a key, field or member).

All binds of an event are read before any of its writes.
"""

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_HOLE = re.compile(r"\{([A-Za-z0-9_]+)\}")


@dataclass(frozen=True)
class Var:
    """A value bound by a :class:`Bind` of the same event, negated on request (amounts)."""

    name: str
    negate: bool = False


@dataclass(frozen=True)
class Template:
    """A key, field or member with ``{name}`` holes filled from bound values."""

    pattern: str

    def names(self) -> set[str]:
        return set(_HOLE.findall(self.pattern))


Text = str | Template
Value = str | Var
Amount = int | Var


@dataclass(frozen=True)
class Bind:
    """Read `fields` of hash `key`; each becomes a variable of the same name. A missing field
    makes the event fail (the projection never wrote what it needs)."""

    key: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class SetFields:
    """Set fields of hash `key`."""

    key: Text
    fields: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class IncrementField:
    """Add an integer to a field of hash `key` (a missing field counts as 0)."""

    key: Text
    field: Text
    amount: Amount


@dataclass(frozen=True)
class IncrementScore:
    """Add an integer to the score of `member` in sorted set `key` (missing: 0)."""

    key: Text
    member: Text
    amount: Amount


@dataclass(frozen=True)
class AppendToList:
    """Append `value` to the JSON list held in a field of hash `key` (missing: [])."""

    key: Text
    field: str
    value: str


@dataclass(frozen=True)
class RemoveFromList:
    """Remove the first `value` from the JSON list held in a field of hash `key`."""

    key: Text
    field: str
    value: str


Op = Bind | SetFields | IncrementField | IncrementScore | AppendToList | RemoveFromList


class UnboundName(ValueError):
    """A template or variable names a value no bind of the event reads."""


def check(ops: Sequence[Op]) -> None:
    """Raise UnboundName if an operation uses a name that no bind of the same event reads."""
    bound = {name for op in ops if isinstance(op, Bind) for name in op.fields}
    used: set[str] = set()
    for op in ops:
        for part in _parts(op):
            if isinstance(part, Template):
                used |= part.names()
            elif isinstance(part, Var):
                used.add(part.name)
    if missing := used - bound:
        raise UnboundName(f"unbound names {sorted(missing)} in {list(ops)!r}")


def _parts(op: Op) -> Iterable[object]:
    match op:
        case SetFields():
            yield op.key
            yield from op.fields.values()
        case IncrementField():
            yield from (op.key, op.field, op.amount)
        case IncrementScore():
            yield from (op.key, op.member, op.amount)
        case AppendToList() | RemoveFromList():
            yield op.key
        case Bind():
            pass


def fill(text: Text, values: Mapping[str, str]) -> str:
    if isinstance(text, str):
        return text
    return _HOLE.sub(lambda match: values[match.group(1)], text.pattern)


def resolve(value: Value | Amount, values: Mapping[str, str]) -> str:
    """A value or amount as the text a store takes (negated variables keep integer syntax)."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    text = values[value.name]
    if not value.negate or text == "0":
        return text
    return text[1:] if text.startswith("-") else "-" + text


def encode(ops: Sequence[Op]) -> str:
    """The operations as the JSON array the Lua executor reads (see redis_target.LUA)."""
    return json.dumps([_encode(op) for op in ops], separators=(",", ":"))


def _text(text: Text) -> Any:
    return text if isinstance(text, str) else {"t": text.pattern}


def _value(value: Value | Amount) -> Any:
    if isinstance(value, Var):
        return {"var": value.name, "neg": value.negate}
    return str(value)


def _encode(op: Op) -> list[Any]:
    match op:
        case Bind():
            return ["bind", op.key, *op.fields]
        case SetFields():
            pairs = [item for name, value in op.fields.items() for item in (name, _value(value))]
            return ["set", _text(op.key), *pairs]
        case IncrementField():
            return ["incr", _text(op.key), _text(op.field), _value(op.amount)]
        case IncrementScore():
            return ["zincr", _text(op.key), _text(op.member), _value(op.amount)]
        case AppendToList():
            return ["push", _text(op.key), op.field, op.value]
        case RemoveFromList():
            return ["pull", _text(op.key), op.field, op.value]
