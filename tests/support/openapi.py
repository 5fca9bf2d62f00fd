"""Apps built for their OpenAPI document only: building one opens nothing (its lifespan would),
but it is given a data directory all the same. The type of schemathesis's cases of an OpenAPI
operation."""

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import TypeAlias

from schemathesis import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.adapter import OpenApiResponses
from schemathesis.specs.openapi.adapter.parameters import OpenApiParameter
from schemathesis.specs.openapi.adapter.security import OpenApiSecurityParameters
from schemathesis.specs.openapi.schemas import OpenApiSchema

OpenApiCase: TypeAlias = Case[
    APIOperation[OpenApiParameter, OpenApiResponses, OpenApiSecurityParameters, OpenApiSchema]
]
"""A generated case of an operation of an OpenAPI document (schemathesis spells this alias for
type checkers only, in `schemathesis.specs.openapi.schemas`)."""


@cache
def document_only_data_dir() -> Path:
    """A temporary data directory for such apps, removed at exit: whatever one of them might
    write (a development key) never lands in the repository."""
    folder = Path(tempfile.mkdtemp(prefix="strata-document-only-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
