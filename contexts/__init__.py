"""The registry of bounded contexts: each context declared once, everything else derived.

Shape (after pgorecki/python-ddd's modules and cosmicpython's bootstrap): a context's
declaration (`BoundedContext`) names its application, aggregates, command router, the projections
and read router of its read models, and the stores and streams that follow from its name. It sits
here, at the composition level, rather than in `domain/` (which knows nothing of HTTP or settings,
and the declaration names FastAPI routers) or in an API (an API does not own the list of contexts;
the relay, the projector, replay and the deployment files read it too). It is the one place that
imports both `projections/` and `read_api/` code (a context's projections and read endpoints).
`contexts/users.py` and `contexts/orders.py` declare the two contexts whose code predates the
registry; a new context is one package, `contexts/<name>/`, holding its domain, its endpoints,
its read models and its declaration, plus one line in `contexts/registered.py`.

- `registry`: the declaration types (`BoundedContext`, `Registry`); imports no context.
- `registered`: the one tuple of registered contexts (`REGISTRY`).
- `deployment`: each context's write service and relay, their names and ports, and what
  scripts/stack runs (asked at run time: `python -m contexts.deployment`).
- `generate`: writes the parts of compose.yaml that list them.
"""
