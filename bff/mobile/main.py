"""`strata-bff-mobile`: start the mobile BFF with settings from the environment."""

from bff.serve import serve


def main() -> None:
    serve("strata-bff-mobile", "bff.mobile.app:create_app", lambda s: s.bff_mobile_port)
