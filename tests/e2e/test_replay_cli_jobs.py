"""`replay jobs list | retry` as an operator runs them: the console script, in a subprocess, on
embedded stores holding parked jobs (parked here, as a poller parks them)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from contexts.fulfilment.service import COMMAND_JOB
from contexts.payments.service import PAYMENT_PROVIDER_JOBS
from contexts.settings import Settings
from domain.ports import Job, SideRecords
from eventlog.jobs import JobTable
from eventlog.stores import Services, build_services
from tests.e2e.test_replay_cli_aggregates import replay

PARKED_AT = datetime(2030, 1, 1, tzinfo=UTC)
REFUSED = "the provider refused it: POST /authorizations/a-1/capture: 404 no authorization"


@dataclass(frozen=True)
class Parked:
    env: dict[str, str]
    data_dir: Path


def _park(services: Services, context: str, kind: str, key: str, reason: str) -> None:
    store = cast(JobTable, services[context].recorder)
    services[context].save(side_records=SideRecords(jobs=[Job(kind, key, PARKED_AT)]))
    (claimed,) = store.claim_due_jobs(kind, PARKED_AT, 1, timedelta(seconds=10))
    assert store.park_job(kind, key, claimed.fence, reason, PARKED_AT)


def _store(data_dir: Path, context: str) -> tuple[Services, JobTable]:
    services = build_services(Settings(data_dir=data_dir, group_commit=False))
    return services, cast(JobTable, services[context].recorder)


@pytest.fixture
def parked(tmp_path: Path) -> Parked:
    data_dir = tmp_path / "var"
    services = build_services(Settings(data_dir=data_dir, group_commit=False))
    try:
        _park(services, "payments", PAYMENT_PROVIDER_JOBS, "p-1:capture", REFUSED)
        _park(services, "payments", PAYMENT_PROVIDER_JOBS, "p-2:capture", REFUSED)
        _park(services, "fulfilment", COMMAND_JOB, "cmd-1", "KeyError: 'target'")
    finally:
        services.close()
    return Parked({"STRATA_DATA_DIR": str(data_dir)}, data_dir)


def test_list_shows_the_parked_jobs_of_every_context_with_their_reason(parked: Parked) -> None:
    listed = replay(parked.env, "jobs", "list", "--json").json()["parked_jobs"]
    assert [(job["context"], job["kind"], job["key"], job["reason"]) for job in listed] == [
        ("payments", PAYMENT_PROVIDER_JOBS, "p-1:capture", REFUSED),
        ("payments", PAYMENT_PROVIDER_JOBS, "p-2:capture", REFUSED),
        ("fulfilment", COMMAND_JOB, "cmd-1", "KeyError: 'target'"),
    ]
    assert listed[0]["parked_at"] == PARKED_AT.isoformat() and listed[0]["attempts"] == 1

    only = replay(parked.env, "jobs", "list", "--kind", COMMAND_JOB, "--json").json()
    assert [job["key"] for job in only["parked_jobs"]] == ["cmd-1"]
    human = replay(parked.env, "jobs", "list", "--context", "payments")
    assert human.code == 0 and "p-2:capture" in human.stdout and "cmd-1" not in human.stdout


def test_retry_one_then_all_makes_them_due_again_with_attempts_reset(parked: Parked) -> None:
    one = replay(parked.env, "jobs", "retry", PAYMENT_PROVIDER_JOBS, "p-1:capture", "--json")
    assert one.json() == {
        "context": "payments",
        "kind": PAYMENT_PROVIDER_JOBS,
        "retried": ["p-1:capture"],
    }
    again = replay(parked.env, "jobs", "retry", PAYMENT_PROVIDER_JOBS, "p-1:capture")
    assert (again.code, again.stderr) == (
        3,
        f"replay: no parked {PAYMENT_PROVIDER_JOBS} job 'p-1:capture'\n",
    )
    every = replay(parked.env, "jobs", "retry", COMMAND_JOB, "--all")
    assert every.code == 0 and "cmd-1" in every.stdout

    services, payments = _store(parked.data_dir, "payments")
    try:
        due = payments.claim_due_jobs(PAYMENT_PROVIDER_JOBS, datetime.now(UTC), 10, timedelta(1))
        assert [(job.key, job.attempts) for job in due] == [("p-1:capture", 1)]
        assert [job.key for job in payments.parked_jobs()] == ["p-2:capture"]
    finally:
        services.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retry", "no-such-kind", "k"], "unknown kind of job 'no-such-kind'; use one of "),
        (["retry", COMMAND_JOB], "give the job's KEY, or --all"),
        (["retry", COMMAND_JOB, "cmd-1", "--all"], "a KEY and --all: give one of them"),
        (["retry", COMMAND_JOB, " "], "the job's KEY is empty"),
        (["list", "--context", "users"], "no jobs in context 'users'; use one of "),
        (["list", "--context", "payments", "--kind", COMMAND_JOB], "in the fulfilment context"),
        (["list", "--limit", "0"], "--limit"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    parked: Parked, args: list[str], message: str
) -> None:
    done = replay(parked.env, "jobs", *args)
    assert done.code == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("replay: ") and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1


def test_a_huge_key_is_not_echoed_whole(parked: Parked) -> None:
    huge = "k" * 100_000
    done = replay(parked.env, "jobs", "retry", PAYMENT_PROVIDER_JOBS, huge)
    assert done.code == 3
    assert done.stderr.startswith(f"replay: no parked {PAYMENT_PROVIDER_JOBS} job 'kkk")
    assert "characters left out)" in done.stderr and done.stderr.endswith("kkk'\n")
    assert len(done.stderr) < 1_100
