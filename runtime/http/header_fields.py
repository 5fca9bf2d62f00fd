"""Request header fields the services read, parsed the same way on every route: `If-Match`,
`Idempotency-Key`, the trace ids and the bearer token of `Authorization`; and the rule that a
field holding one value is sent once (`one_field`).

Each parser takes the field's text (Starlette hands header values over decoded as Latin-1) and
either returns its meaning or raises `MalformedField` saying what is wrong; the HTTP layer turns
that into its 400.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
IDEMPOTENCY_KEY_RULE = "Idempotency-Key must be 1 to 200 visible ASCII characters"
TRACE_ID = re.compile(r"[\x21-\x7e]{1,100}")

# If-Match = "*" / #entity-tag (RFC 9110 §13.1.1, lists per §5.6.1): entity-tag = [ "W/" ]
# DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text; empty list elements are allowed.
# Header values arrive decoded as Latin-1, so obs-text is U+0080..U+00FF. The quantifiers
# around the separators are possessive: a long run of blanks cannot make matching backtrack.
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_IF_MATCH_LIST = re.compile(
    rf"[ \t]*+(?:{_ENTITY_TAG})?(?:[ \t]*+,[ \t]*+(?:{_ENTITY_TAG})?)*[ \t]*+"
)
_TAGS = re.compile(r'(W/)?"([^"]*)"')


class MalformedField(ValueError):
    """A header field's value outside its grammar."""


@dataclass(frozen=True)
class EntityTag:
    opaque: str
    """The tag between its quotes."""
    weak: bool


ANY_TAG = None
"""What `if_match_tags` returns for `*`."""


def if_match_tags(value: str) -> list[EntityTag] | None:
    """The entity tags of an If-Match value, or `ANY_TAG` (None) for `*`; at least one."""
    if value.strip(" \t") == "*":
        return ANY_TAG
    if _IF_MATCH_LIST.fullmatch(value) is None:
        raise MalformedField('expected "*" or a comma-separated list of entity tags')
    tags = [EntityTag(opaque, bool(weak)) for weak, opaque in _TAGS.findall(value)]
    if not tags:
        raise MalformedField("expected at least one entity tag")
    return tags


def idempotency_key(value: str | None) -> str | None:
    """The Idempotency-Key as sent, if it is one (1 to 200 visible ASCII characters)."""
    if value is not None and IDEMPOTENCY_KEY.fullmatch(value) is None:
        raise MalformedField(IDEMPOTENCY_KEY_RULE)
    return value


def trace_id(value: str | None, field: str) -> str | None:
    """An X-Correlation-Id or X-Causation-Id as sent, if it is one (1 to 100 visible ASCII)."""
    if value is not None and TRACE_ID.fullmatch(value) is None:
        raise MalformedField(f"{field} must be 1 to 100 visible ASCII characters")
    return value


def one_field(fields: Sequence[str], name: str) -> str | None:
    """The value of the field `name`, which holds a single value, given all the lines of it the
    request sent; `MalformedField` if it sent several. Several lines of a field mean the same as
    one line of their values joined by commas (RFC 9110 §5.3), which no single value's grammar
    allows; and another hop (a proxy, the gateway) might read one line where this one reads
    the other."""
    if len(fields) > 1:
        raise MalformedField(f"send one {name} field, not {len(fields)}")
    return fields[0] if fields else None


def one_authorization(fields: Sequence[str]) -> str | None:
    """The request's Authorization field, given all it sent (`one_field`)."""
    return one_field(fields, "Authorization")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` field (the scheme in any case), or None
    when the field is absent, of another scheme, or names no token."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else None


_DELTA_SECONDS = re.compile(r"[0-9]{1,9}")


def retry_after_seconds(value: str | None) -> int | None:
    """A `Retry-After` in delta-seconds (RFC 9110 §10.2.3), as this system's services send it;
    None for none, an HTTP date or anything malformed (the caller's own backoff then applies)."""
    if value is None or _DELTA_SECONDS.fullmatch(value.strip()) is None:
        return None
    return int(value)
