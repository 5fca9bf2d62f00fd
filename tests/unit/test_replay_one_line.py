"""`replay.contexts.one_line`: what an operator reads of an unexpected failure, on one line."""

import pytest

from replay.contexts import one_line


@pytest.mark.parametrize(
    ("error", "plain", "with_type"),
    [
        (
            OSError("connection refused\nat line 2"),
            "connection refused",
            "OSError: connection refused",
        ),
        (RuntimeError("  spaced  "), "spaced", "RuntimeError: spaced"),
        (KeyError(), "KeyError", "KeyError"),
        (ValueError(" \n "), "ValueError", "ValueError"),
    ],
)
def test_the_first_line_of_an_error_and_its_type_when_asked(
    error: BaseException, plain: str, with_type: str
) -> None:
    assert one_line(error) == plain
    assert one_line(error, with_type=True) == with_type
