"""What a service's app must pass before it is served, judged once in the serving process.

Some settings only the app can judge: a rate limit of a route it does not have (its routes are
known once it is built). Its lifespan refuses them too, but there a failure is each worker's
traceback; here it is one line and exit code 1, like a setting of the wrong type.
"""

import importlib
import sys
from collections.abc import Callable

from fastapi import FastAPI

StartCheck = Callable[[], None]
"""Raises `ValueError`, saying what is wrong, if the app must not be served."""


def add_start_check(app: FastAPI, check: StartCheck) -> None:
    app.state.start_checks = [*getattr(app.state, "start_checks", []), check]


def preflight(prog: str, factory: str) -> None:
    """Build the app of `factory` ("module:function": no connection is made until its lifespan
    starts) and run its start checks; on the first failure, exit with one line."""
    module, _, name = factory.partition(":")
    app = getattr(importlib.import_module(module), name)()
    for check in getattr(app.state, "start_checks", []):
        try:
            check()
        except ValueError as error:
            sys.exit(f"{prog}: invalid settings: {error}")
