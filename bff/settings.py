"""The settings of the BFF processes: the common ones, where the read API is, their ports, and
how long a downstream call may take. Every field is an environment variable `STRATA_<FIELD>`."""

from pydantic import Field, HttpUrl

from runtime.settings import CommonSettings


class BffSettings(CommonSettings):
    """`breaker_failure_threshold` and `breaker_recovery_seconds` set each downstream breaker;
    `redis_url` holds the rate limits (`rate_limit_*`)."""

    read_api_url: HttpUrl = Field(
        HttpUrl("http://127.0.0.1:8003"), description="BFFs: base URL of the read API."
    )
    bff_web_port: int = Field(8210, ge=1, le=65535, description="Port the web BFF listens on.")
    bff_mobile_port: int = Field(
        8220, ge=1, le=65535, description="Port the mobile BFF listens on."
    )
    bff_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="BFFs: seconds a downstream call may take in all, plus the request's"
        " read-your-writes `wait`; then its section is unavailable.",
    )
