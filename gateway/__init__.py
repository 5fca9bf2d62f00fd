"""The Envoy API gateway: its bootstrap configuration, generated from the context registry and
the edge services (`python -m gateway.generate`). Clients reach every service through one port
(8080); Envoy checks the JWT, limits the request rate, times out, retries idempotent reads, ejects
failing hosts and logs each request with its correlation id. See docs/gateway.md."""
