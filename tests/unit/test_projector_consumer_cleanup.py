"""A partition's new holder deletes the older holders' consumers, and never dies of it."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from projections.leases import Lease
from projections.workers import _delete_older_consumers


@dataclass
class Info:
    name: str


@dataclass
class Consumers:
    """The two JetStream calls the cleanup makes, answering as nats-py 2.x did in CI once: its
    consumer listing raised AttributeError on a null entry (a consumer gone while listed)."""

    names: list[str]
    listing_fails: bool = False
    deleted: list[str] = field(default_factory=list)

    async def consumers_info(self, stream: str) -> list[Info]:
        if self.listing_fails:
            raise AttributeError("'NoneType' object has no attribute 'get'")
        return [Info(name) for name in self.names]

    async def delete_consumer(self, stream: str, name: str) -> bool:
        self.deleted.append(name)
        return True


def clean(js: Consumers) -> None:
    jetstream: Any = js
    asyncio.run(_delete_older_consumers(jetstream, "ES_ORDERS", Lease(partition=3, epoch=7)))


def test_only_the_partitions_consumers_of_older_epochs_are_deleted() -> None:
    names = ["proj_orders_p03_e5", "proj_orders_p03_e7", "proj_orders_p04_e2", "proj_orders_all"]
    js = Consumers(names)
    clean(js)
    assert js.deleted == ["proj_orders_p03_e5"]


def test_a_listing_that_fails_deletes_nothing_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    js = Consumers(["proj_orders_p03_e5"], listing_fails=True)
    clean(js)
    assert js.deleted == []
    assert "the consumers of ES_ORDERS could not be listed, none deleted" in caplog.text
