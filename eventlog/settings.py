"""The one settings model. Every field is an environment variable ``STRATA_<FIELD>``."""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["embedded", "stack"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
CONTEXTS = ("users", "orders")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STRATA_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        Path("var"), description="Embedded mode: folder of the SQLite event stores."
    )
    users_database_url: str | None = Field(
        None, description="Stack mode: PostgreSQL URL of the users event store."
    )
    orders_database_url: str | None = Field(
        None, description="Stack mode: PostgreSQL URL of the orders event store."
    )
    host: str = Field("127.0.0.1", description="Address the write API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the write API listens on.")
    web_workers: int = Field(
        1, ge=1, le=64, description="Write API processes (uvicorn workers) sharing the port."
    )
    worker_threads: int = Field(
        40, ge=1, le=1000, description="Threads running blocking store calls per process."
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
    group_commit: bool = Field(
        True, description="Commit concurrent commands of one store in shared transactions."
    )
    group_commit_max_batch: int = Field(
        256, ge=1, description="Most commands committed in one shared transaction."
    )
    aggregate_cache_size: int = Field(
        10_000, ge=0, description="Aggregates cached per store (0 turns the cache off)."
    )
    log_level: LogLevel = Field("info", description="Log level of the services.")

    @model_validator(mode="after")
    def _urls_come_together(self) -> "Settings":
        given = [self.users_database_url is not None, self.orders_database_url is not None]
        if any(given) and not all(given):
            raise ValueError(
                "stack mode needs STRATA_USERS_DATABASE_URL and STRATA_ORDERS_DATABASE_URL"
            )
        return self

    @property
    def mode(self) -> Mode:
        return "stack" if self.users_database_url else "embedded"

    def database_url(self, context: str) -> str | None:
        return {"users": self.users_database_url, "orders": self.orders_database_url}[context]
