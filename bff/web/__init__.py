"""The web BFF: `GET /web/dashboard`."""
