"""`strata-bff-web`: start the web BFF with settings from the environment."""

from bff.serve import bff_main

main = bff_main("strata-bff-web", "bff.web.app:create_app", lambda s: s.bff_web_port)
