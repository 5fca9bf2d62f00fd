"""The token endpoint's body: `application/x-www-form-urlencoded` (RFC 6749 §3.2), parsed
strictly. Each parameter at most once, UTF-8 after percent-decoding, no control characters."""

import re
from urllib.parse import parse_qsl

from domain.values import text_problem

MAX_FIELDS = 16
BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class MalformedForm(ValueError):
    pass


def parse_form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as error:
        raise MalformedForm(f"not a form body: byte {error.start} is not ASCII") from None
    try:
        bad_escape = BAD_ESCAPE.search(text)
        if bad_escape is not None:
            raise ValueError(f"'%' at {bad_escape.start()} is not followed by two hex digits")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise MalformedForm("not a form body: a percent-encoded value is not UTF-8") from None
    except ValueError as error:
        raise MalformedForm(f"not a form body: {error}") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise MalformedForm(f"{name[:40]!r} is given more than once")
        problem = text_problem(name) or text_problem(value)
        if problem is not None:
            raise MalformedForm(f"parameter {name[:40]!r}: {problem}")
        form[name] = value
    return form


def required(form: dict[str, str], *names: str) -> list[str]:
    """The values of `names`, each present and not empty."""
    missing = [name for name in names if not form.get(name)]
    if missing:
        raise MalformedForm(f"missing: {', '.join(missing)}")
    return [form[name] for name in names]
