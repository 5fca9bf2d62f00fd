"""The REST read API: queries over the read models that the projectors keep up to date.

Run on its own with `strata-read-api` (`read_api.app.create_app`), or serve the read routes from
another FastAPI app with `read_api.routes.include_read_routes(app, settings, prefix="/read")`.
"""
