"""The read models of the fulfilment's contexts (issue 9), declared beside the catalog as a
context's own models are: the `payments` ledger, the `shipments` board and the `fulfilments`
(each order's saga). Their projections are declared by the payments, shipping and fulfilment
contexts; the read API's order detail reads `fulfilments` too (docs/read-models.md)."""

from readmodels.catalog import ReadModel
from readmodels.sql import Column, Index, Table

PAYMENTS_TABLE = Table(
    "payments",
    (
        Column("id", "uuid", nullable=False),
        Column("order_id", "uuid", nullable=False),
        Column("user_id", "uuid", nullable=False),
        Column("amount_cents", "bigint", nullable=False),
        Column("currency", "text", nullable=False),
        Column("status", "text", nullable=False),
        Column("reference", "text"),
        Column("reason", "text"),
        Column("created_at", "timestamptz", nullable=False),
        Column("updated_at", "timestamptz", nullable=False),
        Column("version", "int", nullable=False),
    ),
    primary_key=("id",),
    indexes=(
        Index("payments_by_order", ("order_id", "created_at", "id")),
        Index("payments_by_user", ("user_id", "created_at", "id")),
    ),
)

SHIPMENTS_TABLE = Table(
    "shipments",
    (
        Column("id", "uuid", nullable=False),
        Column("order_id", "uuid", nullable=False),
        Column("user_id", "uuid", nullable=False),
        Column("status", "text", nullable=False),
        Column("carrier", "text"),
        Column("reference", "text"),
        Column("reason", "text"),
        Column("created_at", "timestamptz", nullable=False),
        Column("updated_at", "timestamptz", nullable=False),
        Column("version", "int", nullable=False),
    ),
    primary_key=("id",),
    indexes=(
        Index("shipments_by_status", ("status", "created_at", "id")),
        Index("shipments_by_order", ("order_id",)),
    ),
)

FULFILMENTS_TABLE = Table(
    "fulfilments",
    (
        Column("order_id", "uuid", nullable=False),
        Column("saga_id", "uuid", nullable=False),
        Column("user_id", "uuid", nullable=False),
        Column("status", "text", nullable=False),
        Column("step", "text"),
        Column("attention", "text"),
        Column("reason", "text"),
        Column("note", "text"),
        Column("steps", "text", nullable=False),
        Column("started_at", "timestamptz", nullable=False),
        Column("updated_at", "timestamptz", nullable=False),
        Column("version", "int", nullable=False),
    ),
    primary_key=("order_id",),
    unique=(("saga_id",),),
    indexes=(Index("fulfilments_by_status", ("status", "started_at", "order_id")),),
)

PAYMENTS = ReadModel("payments", ("payments",), "tables", (PAYMENTS_TABLE,))
SHIPMENTS = ReadModel("shipments", ("shipping",), "tables", (SHIPMENTS_TABLE,))
FULFILMENTS = ReadModel("fulfilments", ("fulfilment",), "tables", (FULFILMENTS_TABLE,))
