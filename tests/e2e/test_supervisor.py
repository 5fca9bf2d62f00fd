"""The stack's supervisor (`python -m runtime.supervisor`) with real child processes: a crashed
process comes back, the others are left alone, and SIGTERM stops them all."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.supervisor import Backoff, Program

CHILD = """
import os, signal, sys, time
name, folder, on_term = sys.argv[1], sys.argv[2], sys.argv[3]
def stopped(signum, frame):
    with open(f"{folder}/{name}.stopped", "a") as f:
        f.write(f"{os.getpid()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stopped if on_term == "exit" else signal.SIG_IGN)
with open(f"{folder}/{name}.pids", "a") as f:
    f.write(f"{os.getpid()}\\n")
while True:
    time.sleep(0.05)
"""


def _child(name: str, folder: Path, on_term: str = "exit") -> str:
    return f"{name}={sys.executable} -c '{CHILD}' {name} {folder} {on_term}"


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {seconds} s")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever adopted it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*programs: str, grace: float = 5.0) -> subprocess.Popen[bytes]:
        options = ["--logs", str(tmp_path / "logs"), "--first-pause", "0.1", "--max-pause", "0.4"]
        options += ["--grace", str(grace)]
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.supervisor", *options, *programs],
            stderr=(tmp_path / "supervisor.log").open("wb"),
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_killed_process_is_restarted_and_sigterm_stops_every_process(
    supervise: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    supervisor = supervise(
        _child("a", tmp_path), _child("b", tmp_path), _child("deaf", tmp_path, "ignore"), grace=1
    )
    pids = {name: tmp_path / f"{name}.pids" for name in ("a", "b", "deaf")}
    _wait_for(lambda: all(len(_lines(path)) == 1 for path in pids.values()))
    [first_a], [b], [deaf] = (_lines(path) for path in pids.values())

    os.kill(int(first_a), signal.SIGKILL)
    _wait_for(lambda: len(_lines(pids["a"])) == 2)

    second_a = _lines(pids["a"])[1]
    assert second_a != first_a and _alive(int(second_a))
    assert _lines(pids["b"]) == [b] and _alive(int(b))  # the others were left alone

    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    assert _lines(tmp_path / "a.stopped") == [second_a]
    assert _lines(tmp_path / "b.stopped") == [b]
    assert not any(_alive(int(pid)) for pid in (second_a, b, deaf))  # deaf was killed
    log = (tmp_path / "supervisor.log").read_text()
    assert "a exited (signal SIGKILL)" in log
    assert "deaf did not stop within 1 s: killing it" in log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal")
def test_no_process_outlives_a_killed_supervisor(
    supervise: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    supervisor = supervise(_child("a", tmp_path), _child("b", tmp_path))
    pids = [tmp_path / "a.pids", tmp_path / "b.pids"]
    _wait_for(lambda: all(len(_lines(path)) == 1 for path in pids))

    supervisor.kill()
    supervisor.wait()

    orphans = [int(_lines(path)[0]) for path in pids]
    _wait_for(lambda: not any(_running(pid) for pid in orphans))
    assert [_lines(tmp_path / f"{name}.stopped") for name in "ab"] == [[str(p)] for p in orphans]


def test_a_crashing_process_is_restarted_with_doubling_pauses(
    supervise: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    supervisor = supervise(f"crash={sys.executable} -c 'import sys; sys.exit(3)'")
    log = tmp_path / "supervisor.log"
    _wait_for(lambda: log.read_text().count("restarting in") >= 5)

    supervisor.send_signal(signal.SIGINT)
    assert supervisor.wait(timeout=30) == 0
    messages = [json.loads(line)["message"] for line in log.read_text().splitlines()]
    pauses = [
        message.rsplit("restarting in ", 1)[1].removesuffix(" s")
        for message in messages
        if "restarting in" in message
    ]
    assert pauses[:5] == ["0.1", "0.2", "0.4", "0.4", "0.4"]
    assert "crash exited (code 3)" in log.read_text()


SECRET_CHILD = "import os, time; print(os.environ['SECRET'], flush=True); time.sleep(60)"


def test_a_secret_given_in_a_programs_file_is_in_no_process_list(
    supervise: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """`env NAME=VALUE` before a command reaches the process's environment, never its
    arguments, and the file keeps it out of the supervisor's own."""
    secret = f"s3cret-{os.getpid()}"
    programs = tmp_path / "programs"
    programs.write_text(f'keeper=env SECRET={secret} {sys.executable} -c "{SECRET_CHILD}"\n')
    supervisor = supervise("--programs-file", str(programs))
    log = tmp_path / "logs" / "keeper.log"
    _wait_for(lambda: log.exists() and secret in log.read_text())

    [pid] = re.findall(r"started keeper \(pid (\d+)\)", (tmp_path / "supervisor.log").read_text())
    for process in (supervisor.pid, int(pid)):
        assert secret.encode() not in Path(f"/proc/{process}/cmdline").read_bytes()
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == sys.executable.encode()


def test_env_assignments_become_the_environment_and_env_with_options_runs_as_it_is() -> None:
    plain = Program.parse("w=env A=1 B='x y' /bin/cmd --flag")
    assert (plain.argv, plain.environment) == (["/bin/cmd", "--flag"], {"A": "1", "B": "x y"})
    unsetting = Program.parse("w=env -u A B=1 /bin/cmd")
    assert (unsetting.argv, unsetting.environment) == (["env", "-u", "A", "B=1", "/bin/cmd"], {})


def test_the_pause_starts_over_after_a_steady_run() -> None:
    backoff = Backoff(first=0.5, cap=30, steady=60)

    assert backoff.next_pause(None, 0.1) == 0.5
    assert backoff.next_pause(0.5, 0.1) == 1.0
    assert backoff.next_pause(16, 0.1) == 30
    assert backoff.next_pause(30, 59) == 30
    assert backoff.next_pause(30, 60) == 0.5


def test_bad_arguments_exit_2_naming_the_problem(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "runtime.supervisor", "x=true", "x=false", "--logs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert finished.returncode == 2
    assert "every process needs a name of its own" in finished.stderr

    missing = tmp_path / "missing"
    for arguments, message in (
        ([], "no process to run"),
        (["--programs-file", str(missing)], "--programs-file"),
    ):
        finished = subprocess.run(
            [sys.executable, "-m", "runtime.supervisor", *arguments, "--logs", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert finished.returncode == 2
        assert message in finished.stderr.splitlines()[-1]
