"""What every HTTP service shares: problem details, their catalog and OpenAPI, the command-body
gate, and deadline-bound thread hops."""
