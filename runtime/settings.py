"""The settings every process has. Every field is an environment variable ``STRATA_<FIELD>``.

Fields marked `LIVE` may also change while a service runs: a config sidecar hands their new values
to it (runtime/live_settings.py, docs/config.md); every other field is read once, at start.

Each bounded context adds one field, ``<context>_database_url`` (``STRATA_USERS_DATABASE_URL``,
...): `settings_model(names)` builds the model for a set of contexts. The model of the registered
contexts is `contexts.settings.Settings`; the runtime itself knows no context.
"""

import sys
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from runtime.auth.settings import AuthSettings
from runtime.live_field import LIVE
from runtime.projector_settings import ProjectorSettings
from runtime.rate_limit_settings import RateLimitSettings
from runtime.setting_values import (
    FeatureFlags,
    HttpUrlText,
    PostgresUrl,
    RedisUrl,
    UniqueJsonEnvironment,
    UnreadableSetting,
)
from runtime.simulator_settings import SimulatorSettings

Mode = Literal["embedded", "stack"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class CommonSettings(ProjectorSettings, AuthSettings, RateLimitSettings, SimulatorSettings):
    """The settings every deployment has, whatever its contexts (and the projector,
    authentication, rate-limit and simulator settings of their bases)."""

    model_config = SettingsConfigDict(
        env_prefix="STRATA_", extra="ignore", frozen=True, allow_inf_nan=False
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environment = UniqueJsonEnvironment(settings_cls)
        return init_settings, environment, dotenv_settings, file_secret_settings

    data_dir: Path = Field(
        Path("var"),
        description="Embedded mode: folder of the SQLite event stores, read models and"
        " simulators' ledgers.",
    )
    host: str = Field("127.0.0.1", description="Address the write API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the write API listens on.")
    web_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes (uvicorn workers) of the write and read APIs, each with its own"
        " share of the connections (a `SO_REUSEPORT` socket per worker).",
    )
    worker_threads: int = Field(
        40, ge=1, le=1000, description="Threads running blocking store calls per process."
    )
    job_concurrency: int = Field(
        8,
        ge=1,
        le=64,
        description="Jobs of one kind (provider calls, the saga's commands, deadlines) a process"
        " runs at once, from each batch it claims: they mostly wait on another service.",
    )
    db_pool_size: int = Field(
        2, ge=1, description="Connections each event store keeps open (more open on demand)."
    )
    db_connect_timeout: int = Field(
        2, ge=1, description="Seconds to wait for a pooled database connection."
    )
    db_lock_timeout: int = Field(
        5, ge=1, description="Seconds an append may wait for the events table lock."
    )
    request_timeout: float = Field(
        5.0, gt=0, description="Seconds a request may take before it gets a 503."
    )
    max_commands_in_flight: int = Field(
        0,
        ge=0,
        description="Most commands a write-service process handles at once, whatever its"
        " measured speed; one more gets a 503 with `Retry-After` at once, and nothing is done for"
        " it. 0: `STRATA_WORKER_THREADS`, the connections each event store's pool may lend to"
        " commands.",
    )
    min_commands_in_flight: int = Field(
        24,
        ge=1,
        description="Fewest commands the adaptive bound of a write-service process admits at"
        " once, however slow it measures (at most `STRATA_MAX_COMMANDS_IN_FLIGHT`): a floor for"
        " clients that retry a 503 at once, whose retries would otherwise slow the process and"
        " lower its bound further.",
    )
    admission_target_ms: float = Field(
        40.0,
        gt=0,
        le=60_000,
        description="Mean time a command may spend in a write-service process before the process"
        " admits fewer at once: past it, the bound of commands in flight falls to the service"
        " rate measured x this target (Little's law), and a command over the bound gets a 503"
        " with `Retry-After` at once.",
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Largest command body accepted."
    )
    group_commit: bool = Field(
        True, description="Commit concurrent commands of one store in shared transactions."
    )
    group_commit_max_batch: int = Field(
        256, ge=1, description="Most commands committed in one shared transaction."
    )
    aggregate_cache_size: int = Field(
        10_000, ge=0, description="Aggregates cached per store (0 turns the cache off)."
    )
    snapshot_interval: int = Field(
        100,
        ge=0,
        description="Snapshot an aggregate every this many events, so 'state as of T' folds at"
        " most this many events after the nearest snapshot (0: no snapshots).",
    )
    log_level: LogLevel = Field(
        "info", description="Log level of the services.", json_schema_extra=LIVE
    )
    feature_flags: FeatureFlags = Field(
        {},
        description='Feature flags by name, as JSON: `{"new-checkout": true}` (true or false,'
        ' not "yes" or 1; a name is a lowercase letter, then lowercase letters, digits, `_`, `.`'
        " or `-`, 64 characters at most).",
        json_schema_extra=LIVE,
    )
    live_settings_file: Path | None = Field(
        None,
        description="Stack mode: the file of live settings that this service follows and its"
        " config sidecar writes (hot reload); none: the settings never change while it runs.",
    )
    config_sidecar_host: str = Field(
        "127.0.0.1", description="Address of the config sidecar's /healthz, /readyz and /metrics."
    )
    config_sidecar_port: int = Field(
        8005,
        ge=1,
        le=65535,
        description="Port of the config sidecar's /healthz, /readyz and /metrics.",
    )
    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        description="Stack mode: NATS server(s) with JetStream, comma-separated.",
    )
    stream_namespace: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_-]*$",
        description="Prefix of stream names and subjects, to keep several deployments (or test"
        " runs) apart on one NATS account; empty in production.",
    )
    stream_max_age_days: float = Field(
        14, ge=0, description="Days a context stream keeps a message (0: no age limit)."
    )
    stream_max_bytes: int = Field(
        -1,
        ge=-1,
        description="Bytes a context stream may hold, oldest dropped first (-1: no limit).",
    )
    stream_replicas: int = Field(
        1, ge=1, le=5, description="Replicas of each context stream (3 in a production cluster)."
    )
    stream_duplicate_window_seconds: float = Field(
        300, gt=0, description="Seconds JetStream remembers a message id to drop a re-publish."
    )
    relay_page_size: int = Field(
        500, ge=1, le=10_000, description="Events the relay reads from the event store at once."
    )
    relay_max_in_flight: int = Field(
        256, ge=1, le=10_000, description="Publishes the relay leaves unacknowledged at most."
    )
    relay_ack_timeout_seconds: float = Field(
        5.0, gt=0, description="Seconds the relay waits for a publish acknowledgement."
    )
    relay_host: str = Field(
        "127.0.0.1", description="Address of the relay's /healthz, /readyz and /metrics."
    )
    relay_port: int = Field(
        8001, ge=1, le=65535, description="Port of the relay's /healthz, /readyz and /metrics."
    )
    projector_host: str = Field(
        "127.0.0.1", description="Address of the projector's /healthz, /readyz and /metrics."
    )
    projector_port: int = Field(
        8002, ge=1, le=65535, description="Port of the projector's /healthz, /readyz and /metrics."
    )
    projector_batch_size: int = Field(
        256,
        ge=1,
        le=10_000,
        description="Events a projector fetches and applies in one transaction or pipeline.",
    )
    read_database_url: PostgresUrl | None = Field(
        None, description="Stack mode: PostgreSQL URL of the read-model database."
    )
    read_replica_url: PostgresUrl | None = Field(
        None,
        description="Stack mode: PostgreSQL URL of a streaming replica of the read-model database;"
        " the read API then reads the relational models, their checkpoints and the active"
        " versions there, never on the primary (docs/scaling.md).",
    )
    read_replica_max_lag_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="The read API is not ready (/readyz 503) while its replica's replay lags more"
        " than this many seconds.",
    )
    redis_url: RedisUrl | None = Field(
        None, description="Stack mode: Redis URL of the read models."
    )
    read_api_port: int = Field(
        8003, ge=1, le=65535, description="Port the read API listens on (run on its own)."
    )
    read_wait_default_seconds: float = Field(
        2.0, ge=0, le=60, description="Read-your-writes: seconds a read waits if it sends no wait."
    )
    read_wait_max_seconds: float = Field(
        10.0, ge=0, le=60, description="Read-your-writes: the most seconds a read may wait."
    )
    read_max_waiting: int = Field(
        1000,
        ge=0,
        le=100_000,
        description="Read-your-writes: the most reads waiting at once; a read that would wait"
        " beyond them gets its 503 at once.",
    )
    replica_wait_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description="A command's `position` of another context: the most seconds it waits for"
        " this service's replica of that context to reach it.",
    )
    write_urls: str = Field(
        "",
        pattern=r"^([a-z][a-z0-9]*=https?://[^,=\s]+)?(,[a-z][a-z0-9]*=https?://[^,=\s]+)*$",
        description="Where the write services of other contexts are, for a process that sends"
        " them commands (the fulfilment saga): `payments=http://…,shipping=http://…`.",
    )
    read_cursor_secret: SecretStr = Field(
        SecretStr("strata-dev-cursor-key"),
        description="Key signing the read API's page cursors; every replica needs the same one.",
    )
    payment_provider_url: HttpUrlText = Field(
        "http://127.0.0.1:8100", description="Base URL of the payment provider."
    )
    carrier_url: HttpUrlText = Field(
        "http://127.0.0.1:8101", description="Base URL of the carrier."
    )
    provider_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Seconds a call to a provider may wait to connect, or for the next bytes.",
    )
    provider_retries: int = Field(
        2, ge=0, le=10, description="Retries of a provider call that failed transiently."
    )
    breaker_failure_threshold: int = Field(
        5,
        ge=1,
        le=1000,
        description="Failures in a row that open a provider's circuit breaker.",
        json_schema_extra=LIVE,
    )
    breaker_recovery_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds an open circuit breaker waits before it lets one probe call through.",
        json_schema_extra=LIVE,
    )

    @model_validator(mode="after")
    def _urls_come_together(self) -> "CommonSettings":
        urls = self.database_urls()
        if any(urls.values()) and not all(urls.values()):
            variables = " and ".join(f"STRATA_{name.upper()}_DATABASE_URL" for name in urls)
            raise ValueError(f"stack mode needs {variables}")
        return self

    @model_validator(mode="after")
    def _read_wait_within_bound(self) -> "CommonSettings":
        if self.read_wait_default_seconds > self.read_wait_max_seconds:
            raise ValueError(
                "STRATA_READ_WAIT_DEFAULT_SECONDS may not exceed STRATA_READ_WAIT_MAX_SECONDS"
            )
        return self

    @property
    def commands_in_flight_limit(self) -> int:
        """`max_commands_in_flight`, or the default it stands for when 0."""
        return self.max_commands_in_flight or self.worker_threads

    @property
    def mode(self) -> Mode:
        return "stack" if any(self.database_urls().values()) else "embedded"

    def database_urls(self) -> dict[str, str | None]:
        """Each context of the model and its event store's URL (None in the embedded mode)."""
        suffix = "_database_url"
        return {
            name.removesuffix(suffix): getattr(self, name)
            for name in type(self).model_fields
            if name.endswith(suffix) and name != "read" + suffix
        }

    def write_url(self, context: str) -> str | None:
        """The base URL of a context's write service, from `write_urls`."""
        for entry in filter(None, self.write_urls.split(",")):
            name, _, url = entry.partition("=")
            if name == context:
                return url
        return None

    def database_url(self, context: str) -> str | None:
        try:
            return self.database_urls()[context]
        except KeyError:
            raise KeyError(f"the settings have no event store for context {context!r}") from None


def database_url_field(context: str) -> str:
    """The settings field of a context's event-store URL (stack mode)."""
    return f"{context}_database_url"


@cache
def settings_model(contexts: tuple[str, ...]) -> type[CommonSettings]:
    """The settings model of these contexts: the common fields and one URL per event store."""
    fields: dict[str, Any] = {}
    for context in contexts:
        description = f"Stack mode: PostgreSQL URL of the {context} event store."
        fields[database_url_field(context)] = (
            PostgresUrl | None,
            Field(None, description=description),
        )
    return create_model("Settings", __base__=CommonSettings, **fields)


def load_settings(prog: str, model: type[CommonSettings]) -> CommonSettings:
    """The settings from the environment, or exit with one line naming each bad variable."""
    try:
        return model()
    except ValidationError as error:
        sys.exit(f"{prog}: invalid settings: {settings_problems(error)}")
    except SettingsError as error:  # a JSON variable that cannot be read
        cause = error.__cause__
        why = cause if isinstance(cause, UnreadableSetting) else error
        sys.exit(f"{prog}: invalid settings: {why}")


def settings_problems(error: ValidationError) -> str:
    """One line naming each bad variable and what is wrong with it (within a JSON value: where,
    after the variable's name)."""
    return "; ".join(_problem(e["loc"], e["msg"]) for e in error.errors())


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    if not loc:
        return message
    field, *within = loc
    where = f" (at {'.'.join(str(part) for part in within)})" if within else ""
    return f"STRATA_{str(field).upper()}{where}: {message}"
