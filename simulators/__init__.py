"""Simulators of the external providers (issue 9)."""
