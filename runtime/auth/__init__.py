"""Authentication and authorization every service shares (issue 10, item 2).

A request carries an ES256 JWT issued by the identity service (`Authorization: Bearer …`).
`verifier.TokenVerifier` checks it against the identity's JWKS (`jwks.JwksCache`, fetched with
an async client, refetched on an unknown `kid` at most once per interval, served stale while the
identity is down, `KeysUnavailable` when it cannot tell) and yields a `principal.Principal`;
`policy` decides what it may do; `http` is the FastAPI side (the `Caller` dependency,
401/403/503 problem details); `tokens` is how a process gets a token of its own for calling
other services (`TokenSource`); `dev` is the embedded default's development key. The contract is
docs/auth.md.
"""
