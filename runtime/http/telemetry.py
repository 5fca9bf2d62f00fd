"""FastAPI's native OpenTelemetry, off in every app of the project.

FastAPI (0.165) asks the global OpenTelemetry providers on every request whether one is
configured, about 7 µs each time (2.5 % of a `register`'s samples in a py-spy profile). strata
exports no OpenTelemetry: a request's trace is the W3C trace headers it passes on
(`runtime.http.trace_headers`), its metrics are Prometheus' on `/metrics`."""

from fastapi.telemetry import TelemetryConfig

NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
