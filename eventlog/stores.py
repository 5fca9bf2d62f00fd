"""Builds each context's event-sourced application on the store its settings select, and wires
the replicas whose upstream's log the process can read (`eventlog.replica_feeds.StoreTail`)."""

from collections.abc import MutableMapping
from pathlib import Path
from typing import TypeVar, cast

from psycopg.conninfo import conninfo_to_dict

from contexts.registered import REGISTRY
from contexts.registry import Registry, sqlite_file
from contexts.settings import Settings
from domain.service import CommandService
from eventlog.group_commit import GroupCommitter
from eventlog.log_pages import page_source
from eventlog.reactions import Reaction, ReactionIntake
from eventlog.replica_feeds import DrivenTail, ReplicaFeed, StoreTail
from eventlog.replicas import Replica, ReplicaIntake, ReplicaStore

S = TypeVar("S", bound=CommandService)


def event_store_env(settings: Settings, app_name: str) -> dict[str, str]:
    """The `eventsourcing` environment of one application, every key prefixed with its name."""
    url = settings.database_urls().get(app_name)
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
    return settings.data_dir / sqlite_file(app_name)


def _sqlite_env(settings: Settings, app_name: str) -> dict[str, str]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "APPLICATION_RECORDER_TOPIC": "eventlog.sqlite_recorder:SQLiteSideRecordRecorder",
        "SQLITE_DBNAME": str(sqlite_path(settings, app_name)),
        "SQLITE_LOCK_TIMEOUT": str(settings.db_lock_timeout),
    }


class Services:
    """The applications of the contexts a process serves, by name, and the feeds of their
    replicas (those built here read the upstream's log; a composition root may add others)."""

    def __init__(self, applications: MutableMapping[str, CommandService]) -> None:
        self._by_name = applications
        self.feeds: list[ReplicaFeed] = []
        self.reactions: list[ReplicaFeed] = []
        """Started and stopped by the composition root, like the feeds."""

    def all(self) -> tuple[CommandService, ...]:
        return tuple(self._by_name.values())

    def __getitem__(self, context: str) -> CommandService:
        return self._by_name[context]

    def __getattr__(self, context: str) -> CommandService:
        """`services.users`: the application of the context named `users`."""
        try:
            return self._by_name[context]
        except KeyError:
            raise AttributeError(context) from None

    def application(self, kind: type[S]) -> S:
        found = self._by_name.get(kind.name)
        if not isinstance(found, kind):
            raise LookupError(f"no {kind.name} context among {', '.join(self._by_name)}")
        return found

    def close(self) -> None:
        for service in self.all():
            if isinstance(service.committer, GroupCommitter):
                service.committer.close()
            service.close()


def build_services(settings: Settings, registry: Registry = REGISTRY) -> Services:
    services = Services(_applications(settings, registry))
    for context in registry:
        for replica in context.replicas:
            if replica.upstream in registry:
                upstream = services[replica.upstream]
                services.feeds.append(follow_log(services[context.name], replica, upstream))
        for reaction in context.reactions:
            if reaction.upstream in registry:
                upstream = services[reaction.upstream]
                tail = react_to_log(services[context.name], reaction, upstream)
                upstream.commit_listeners.append(tail.wake)
                services.reactions.append(tail)
    if settings.group_commit:
        for service in services.all():
            committer = GroupCommitter(service, max_batch=settings.group_commit_max_batch)
            service.committer = committer.start()
    return services


def _applications(settings: Settings, registry: Registry) -> dict[str, CommandService]:
    """Every context's application; if one cannot be made, those made before it are closed."""
    made: dict[str, CommandService] = {}
    try:
        for context in registry:
            made[context.name] = _application(settings, context.name, registry)
    except Exception:
        for application in made.values():
            application.close()
        raise
    return made


def _application(settings: Settings, context: str, registry: Registry) -> CommandService:
    return registry[context].application(
        env=event_store_env(settings, context), snapshot_interval=settings.snapshot_interval
    )


def follow_log(follower: CommandService, replica: Replica, upstream: CommandService) -> StoreTail:
    """Feed the follower's replica from the upstream's log, caught up at every lookup."""
    intake = ReplicaIntake(cast(ReplicaStore, follower.recorder), replica)
    tail = StoreTail(follower.name, intake, page_source(upstream.recorder))
    follower.replica_refreshers[replica.upstream] = tail.catch_up
    return tail


def react_to_log(
    follower: CommandService, reaction: Reaction, upstream: CommandService
) -> DrivenTail:
    """Run the follower's reaction to the upstream's log, on a thread of its own."""
    intake = ReactionIntake(follower, cast(ReplicaStore, follower.recorder), reaction)
    return DrivenTail(follower.name, intake, page_source(upstream.recorder))


def open_store_for_reading(
    settings: Settings, context: str, registry: Registry = REGISTRY
) -> CommandService:
    """One context's application alone, for tools that read its store (e.g. `replay`)."""
    return _application(settings, context, registry)
