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
from typing import Any, Protocol

import msgspec

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
    return msgspec.json.encode([_encode(op) for op in ops]).decode()  # compact, like json's


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


class DocumentStore(Protocol):
    """Where operations run outside Redis: the generic SQL tables (`readmodels.documents`) or
    documents held in memory by a bulk rebuild (`projections.bulk_memory`)."""

    def hash(self, key: str) -> dict[str, str]: ...

    def field(self, key: str, field: str) -> str | None: ...

    def set_field(self, key: str, field: str, value: str) -> None: ...

    def increment_field(self, key: str, field: str, amount: int) -> None: ...

    def increment_score(self, key: str, member: str, amount: int) -> None: ...


class UnresolvedReference(LookupError):
    """A bind read a document field the projection never wrote."""


def execute(ops: Sequence[Op], documents: DocumentStore) -> None:
    """Run one event's operations on `documents`: binds first, then the writes in order."""
    check(ops)
    values: dict[str, str] = {}
    for op in ops:
        if isinstance(op, Bind):
            values |= _bind(documents, op)
    for op in ops:
        match op:
            case SetFields():
                key = fill(op.key, values)
                for name, value in op.fields.items():
                    documents.set_field(key, name, resolve(value, values))
            case IncrementField():
                amount = int(resolve(op.amount, values))
                documents.increment_field(fill(op.key, values), fill(op.field, values), amount)
            case IncrementScore():
                amount = int(resolve(op.amount, values))
                documents.increment_score(fill(op.key, values), fill(op.member, values), amount)
            case AppendToList():
                key = fill(op.key, values)
                items = _list(documents, key, op.field)
                documents.set_field(key, op.field, _dump([*items, op.value]))
            case RemoveFromList():
                key = fill(op.key, values)
                items = _list(documents, key, op.field)
                if op.value in items:
                    items.remove(op.value)
                documents.set_field(key, op.field, _dump(items))
            case Bind():
                pass


def _bind(documents: DocumentStore, op: Bind) -> dict[str, str]:
    found = documents.hash(op.key)
    missing = [name for name in op.fields if name not in found]
    if missing:
        raise UnresolvedReference(f"{op.key} has no {', '.join(missing)}")
    return {name: found[name] for name in op.fields}


def _list(documents: DocumentStore, key: str, field: str) -> list[str]:
    raw = documents.field(key, field)
    items = [] if raw is None else json.loads(raw)
    if not isinstance(items, list):
        raise TypeError(f"{key} {field} holds {raw!r}, not a JSON list")
    return [str(item) for item in items]


def _dump(items: list[str]) -> str:
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))
