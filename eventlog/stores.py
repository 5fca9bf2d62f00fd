"""Builds each context's event-sourced application on the store its settings select."""

from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from psycopg.conninfo import conninfo_to_dict

from domain.orders.service import OrdersService
from domain.service import CommandService
from domain.users.service import UsersService
from eventlog.group_commit import GroupCommitter
from runtime.settings import Settings


def event_store_env(settings: Settings, app_name: str) -> dict[str, str]:
    """The `eventsourcing` environment of one application, every key prefixed with its name."""
    url = settings.database_url(app_name)
    env = _postgres_env(settings, url) if url else _sqlite_env(settings, app_name)
    env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size or "")
    env["CREATE_TABLE"] = "y"
    prefix = app_name.upper() + "_"
    return {prefix + key: value for key, value in env.items()}


def _postgres_env(settings: Settings, url: str) -> dict[str, str]:
    params = conninfo_to_dict(url)
    # Every worker thread and the group committer may hold a connection at once.
    max_connections = settings.worker_threads + 1
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "eventlog.postgres_recorder:PostgresSideRecordRecorder",
        "POSTGRES_DBNAME": str(params.get("dbname", "")),
        "POSTGRES_HOST": str(params.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(params.get("port", "5432")),
        "POSTGRES_USER": str(params.get("user", "")),
        "POSTGRES_PASSWORD": str(params.get("password", "")),
        "POSTGRES_POOL_SIZE": str(min(settings.db_pool_size, max_connections)),
        "POSTGRES_MAX_OVERFLOW": str(max(0, max_connections - settings.db_pool_size)),
        "POSTGRES_CONNECT_TIMEOUT": str(settings.db_connect_timeout),
        "POSTGRES_LOCK_TIMEOUT": str(settings.db_lock_timeout),
    }


def sqlite_path(settings: Settings, app_name: str) -> Path:
    """Embedded mode: the SQLite file of one application's event store."""
    return settings.data_dir / f"{app_name}.sqlite"


def _sqlite_env(settings: Settings, app_name: str) -> dict[str, str]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "APPLICATION_RECORDER_TOPIC": "eventlog.sqlite_recorder:SQLiteSideRecordRecorder",
        "SQLITE_DBNAME": str(sqlite_path(settings, app_name)),
        "SQLITE_LOCK_TIMEOUT": str(settings.db_lock_timeout),
    }


@dataclass(frozen=True)
class Services:
    users: UsersService
    orders: OrdersService

    def all(self) -> tuple[CommandService, ...]:
        return (self.users, self.orders)

    def close(self) -> None:
        for service in self.all():
            if isinstance(service.committer, GroupCommitter):
                service.committer.close()
            service.close()


def build_services(settings: Settings) -> Services:
    users = UsersService(
        env=event_store_env(settings, UsersService.name),
        snapshot_interval=settings.snapshot_interval,
    )
    orders = OrdersService(
        env=event_store_env(settings, OrdersService.name),
        user_is_active=users.is_active_user,
        snapshot_interval=settings.snapshot_interval,
    )
    services = Services(users=users, orders=orders)
    if settings.group_commit:
        for service in services.all():
            committer = GroupCommitter(service, max_batch=settings.group_commit_max_batch)
            service.committer = committer.start()
    return services


def _refuse_commands(user_id: UUID) -> bool | None:
    raise RuntimeError("this orders service was opened for reading; it takes no commands")


def open_store_for_reading(settings: Settings, context: str) -> CommandService:
    """One context's application alone, for tools that only read its store (e.g. `replay`).

    Without the other contexts, commands that need them are refused.
    """
    env = event_store_env(settings, context)
    interval = settings.snapshot_interval
    if context == UsersService.name:
        return UsersService(env=env, snapshot_interval=interval)
    if context == OrdersService.name:
        return OrdersService(env=env, user_is_active=_refuse_commands, snapshot_interval=interval)
    raise ValueError(f"unknown context {context!r}")
