"""`STRATA_PORT_OFFSET`: how far a whole local stack's default ports move, so a second stack can run
beside the default one (`scripts/stack`, `python -m gateway.generate --port-offset`).

A non-negative integer in ASCII digits, 0 unset; a port it would push past 65535 is refused. Every
refusal is a `PortOffsetError`, its message the end of a line that starts by naming where the offset
came from (`STRATA_PORT_OFFSET`, `--port-offset`).
"""

import os
from collections.abc import Mapping

VARIABLE = "STRATA_PORT_OFFSET"
HIGHEST_PORT = 65535


class PortOffsetError(ValueError):
    """An offset that is not a non-negative integer, or moves a port past `HIGHEST_PORT`."""


def parse_port_offset(value: str) -> int:
    """The offset `value` spells: ASCII digits only (no sign, no spaces)."""
    if not (value.isascii() and value.isdigit()):
        raise PortOffsetError(f"must be a non-negative integer, not {value!r}")
    return int(value)


def port_offset(environ: Mapping[str, str] = os.environ) -> int:
    """The offset of the environment's `STRATA_PORT_OFFSET` (0 unset or empty)."""
    return parse_port_offset(environ.get(VARIABLE) or "0")


def shifted(port: int, offset: int) -> int:
    """`port` moved by `offset`, refused past `HIGHEST_PORT`."""
    moved = port + offset
    if moved > HIGHEST_PORT:
        raise PortOffsetError(f"{offset} moves port {port} to {moved}, past {HIGHEST_PORT}")
    return moved
