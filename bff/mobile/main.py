"""`strata-bff-mobile`: start the mobile BFF with settings from the environment."""

from bff.serve import bff_main

main = bff_main("strata-bff-mobile", "bff.mobile.app:create_app", lambda s: s.bff_mobile_port)
