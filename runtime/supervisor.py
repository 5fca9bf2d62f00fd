"""`python -m runtime.supervisor [--programs-file FILE] NAME=COMMAND ...`: run processes,
restart the ones that exit.

The local stack's runner (scripts/stack); containers get the same from compose's restart
policies. Each process:

- runs in a session of its own (a Ctrl-C in the terminal reaches the supervisor only), with its
  output appended to ``<logs>/<name>.log``;
- is started again when it exits, after a pause that doubles from ``--first-pause`` up to
  ``--max-pause`` and starts over once the process had stayed up ``--steady`` seconds;
- gets SIGTERM when the supervisor gets SIGTERM or SIGINT, then SIGKILL after ``--grace``
  seconds if it is still running. The supervisor exits 0 once every process is gone;
- on Linux, gets SIGTERM from the kernel if the supervisor dies without stopping it (SIGKILL),
  so no process is left running unsupervised.

A command may begin with `env NAME=VALUE ...`: those variables are given to the process in its
environment, not its arguments, so a secret among them shows in no process list (`ps`). Programs
with secrets come from `--programs-file`, one `NAME=COMMAND` per line, for the same reason.

Every start and exit is logged on stderr. Exit codes: 0 stopped by a signal, 2 bad arguments.
"""

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runtime.server_process import configure_server_process

log = logging.getLogger("strata.supervisor")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)


@dataclass(frozen=True)
class Program:
    name: str
    argv: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    """Variables added to the supervisor's environment for this process."""

    @classmethod
    def parse(cls, spec: str) -> "Program":
        """`name=command words`, the command split like a shell would; the `NAME=VALUE` words
        right after a leading `env` become the process's environment (an `env` given options,
        such as `-u NAME`, is run as it is)."""
        name, _, command = spec.partition("=")
        argv = shlex.split(command)
        environment: dict[str, str] = {}
        if argv[:1] == ["env"] and len(argv) > 1 and ASSIGNMENT.fullmatch(argv[1]):
            argv.pop(0)
            while argv and ASSIGNMENT.fullmatch(argv[0]):
                variable, _, value = argv.pop(0).partition("=")
                environment[variable] = value
        if not name.strip() or not argv:
            raise ValueError(f"{spec!r} is not NAME=COMMAND")
        return cls(name.strip(), argv, environment)


@dataclass(frozen=True)
class Backoff:
    """Pauses before restarts: doubling from `first` to `cap`, from `first` again after a run of
    at least `steady` seconds."""

    first: float = 0.5
    cap: float = 30.0
    steady: float = 60.0

    def next_pause(self, previous: float | None, ran_for: float) -> float:
        if previous is None or ran_for >= self.steady:
            return self.first
        return min(self.cap, previous * 2)


class Supervisor:
    def __init__(
        self, programs: list[Program], logs: Path, backoff: Backoff, grace: float = 20.0
    ) -> None:
        self.programs = programs
        self.logs = logs
        self.backoff = backoff
        self.grace = grace
        self.stopping = asyncio.Event()
        self.running: dict[str, asyncio.subprocess.Process] = {}

    async def run(self) -> None:
        """Keep every program running until `stopping` is set; then stop them all."""
        self.logs.mkdir(parents=True, exist_ok=True)
        keepers = [asyncio.create_task(self._keep(program)) for program in self.programs]
        await self.stopping.wait()
        await self._terminate_all()
        await asyncio.gather(*keepers)

    async def _keep(self, program: Program) -> None:
        pause: float | None = None
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                code = await self._run_once(program)
            except OSError as error:  # could not even start it (a missing command)
                log.error("cannot start %s: %s", program.name, error)
                code = None
            if self.stopping.is_set():
                return
            ran_for = time.monotonic() - started
            pause = self.backoff.next_pause(pause, ran_for)
            log.warning(
                "%s exited (%s) after %.1f s; restarting in %g s",
                program.name,
                _describe(code),
                ran_for,
                pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), pause)

    async def _run_once(self, program: Program) -> int:
        with (self.logs / f"{program.name}.log").open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                *program.argv,
                env={**os.environ, **program.environment},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_terminate_with_parent(),
            )
        self.running[program.name] = process
        log.info("started %s (pid %d)", program.name, process.pid)
        try:
            return await process.wait()
        finally:
            self.running.pop(program.name, None)

    async def _terminate_all(self) -> None:
        processes = list(self.running.items())
        for name, process in processes:
            log.info("stopping %s (pid %d)", name, process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for name, process in processes:
            try:
                await asyncio.wait_for(process.wait(), self.grace)
            except TimeoutError:
                log.error("%s did not stop within %g s: killing it", name, self.grace)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> Callable[[], None] | None:
    """Run in the child before exec: SIGTERM it when the supervisor dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def ask_kernel() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return ask_kernel


def _describe(code: int | None) -> str:
    if code is None:
        return "not started"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.supervisor",
        description="Run processes and restart each one that exits, with growing pauses.",
    )
    parser.add_argument(
        "programs", nargs="*", type=_program, metavar="NAME=COMMAND", help="a process to run"
    )
    parser.add_argument(
        "--programs-file",
        type=Path,
        help="a file of more processes to run, one NAME=COMMAND per line",
    )
    parser.add_argument("--logs", type=Path, default=Path("var/stack"), help="log folder")
    parser.add_argument("--first-pause", type=float, default=Backoff.first)
    parser.add_argument("--max-pause", type=float, default=Backoff.cap)
    parser.add_argument("--steady", type=float, default=Backoff.steady)
    parser.add_argument("--grace", type=float, default=20.0, help="seconds from SIGTERM to kill")
    arguments = parser.parse_args(argv)
    if arguments.programs_file is not None:
        try:
            lines = arguments.programs_file.read_text(encoding="utf-8").splitlines()
            arguments.programs += [Program.parse(line) for line in lines if line.strip()]
        except (OSError, UnicodeDecodeError, ValueError) as error:
            parser.error(f"--programs-file: {error}")
    if not arguments.programs:
        parser.error("no process to run")
    names = [program.name for program in arguments.programs]
    if len(set(names)) < len(names):
        parser.error("every process needs a name of its own")
    return arguments


def _program(spec: str) -> Program:
    try:
        return Program.parse(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def _main(arguments: argparse.Namespace) -> None:
    backoff = Backoff(arguments.first_pause, arguments.max_pause, arguments.steady)
    supervisor = Supervisor(arguments.programs, arguments.logs, backoff, arguments.grace)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.stopping.set)
    await supervisor.run()


def main(argv: list[str] | None = None) -> None:
    arguments = _arguments(argv)
    configure_server_process("info")
    asyncio.run(_main(arguments))


if __name__ == "__main__":
    main()
