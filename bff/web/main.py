"""`strata-bff-web`: start the web BFF with settings from the environment."""

from bff.serve import serve


def main() -> None:
    serve("strata-bff-web", "bff.web.app:create_app", lambda settings: settings.bff_web_port)
