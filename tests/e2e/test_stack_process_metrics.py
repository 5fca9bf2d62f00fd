"""Every long-running process of the stack shows its process on `/metrics` (CPU, memory, the
garbage collector's pauses) and has frozen its startup objects out of full collections
(`runtime.server_process`, `runtime.process_metrics`)."""

import httpx
import pytest

from tests.support.stack import PROJECTORS, RELAYS, WRITE_SERVICES, Stack

SERVING = (*WRITE_SERVICES, *RELAYS, *PROJECTORS, "read-api")


def _samples(text: str) -> dict[str, float]:
    lines = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in lines}


@pytest.mark.parametrize("name", SERVING)
def test_a_process_shows_its_cpu_memory_and_collections(stack: Stack, name: str) -> None:
    text = httpx.get(f"{stack.url(name)}/metrics", timeout=10).text
    samples = _samples(text)

    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_resident_memory_bytes"] > 10_000_000
    assert 'python_gc_pause_seconds_count{generation="0"}' in samples
    assert samples["python_gc_frozen_objects"] > 100_000
