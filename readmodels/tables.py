"""The tables of the relational read models (docs/read-models.md), at version 1; a version
k > 1 uses the same tables suffixed `_v<k>` (`readmodels.versions`)."""

from readmodels.sql import Column, Index, Table

USERS_DIRECTORY_TABLE = Table(
    "users_directory",
    (
        Column("id", "uuid", nullable=False),
        Column("name", "text", nullable=False),
        Column("name_lower", "text", nullable=False),
        Column("email", "text", nullable=False),
        Column("city", "text"),
        Column("country", "text"),
        Column("active", "bool", nullable=False),
        Column("version", "int", nullable=False),
        Column("registered_at", "timestamptz", nullable=False),
        Column("updated_at", "timestamptz", nullable=False),
    ),
    primary_key=("id",),
    indexes=(
        Index("users_directory_by_place", ("country", "city")),
        Index("users_directory_by_name", ("name_lower",), prefix_search=True),
    ),
)

USER_HOBBIES_TABLE = Table(
    "user_hobbies",
    (
        Column("user_id", "uuid", nullable=False),
        Column("hobby_lower", "text", nullable=False),
        Column("hobby", "text", nullable=False),
    ),
    primary_key=("user_id", "hobby_lower"),
    indexes=(Index("user_hobbies_by_hobby", ("hobby_lower",)),),
)

ORDERS_TABLE = Table(
    "orders",
    (
        Column("id", "uuid", nullable=False),
        Column("user_id", "uuid", nullable=False),
        Column("currency", "text", nullable=False),
        Column("status", "text", nullable=False),
        Column("total_cents", "bigint", nullable=False),
        Column("line_count", "int", nullable=False),
        Column("created_at", "timestamptz", nullable=False),
        Column("placed_at", "timestamptz"),
        Column("paid_at", "timestamptz"),
        Column("shipped_at", "timestamptz"),
        Column("cancelled_at", "timestamptz"),
        Column("cancel_reason", "text"),
        Column("version", "int", nullable=False),
    ),
    primary_key=("id",),
    indexes=(
        Index("orders_by_user", ("user_id", "created_at", "id")),
        Index("orders_by_status", ("status", "created_at", "id")),
        Index("orders_by_placed", ("placed_at", "id")),
    ),
)

ORDER_LINES_TABLE = Table(
    "order_lines",
    (
        Column("order_id", "uuid", nullable=False),
        Column("sku", "text", nullable=False),
        Column("quantity", "int", nullable=False),
        Column("unit_price_cents", "bigint", nullable=False),
    ),
    primary_key=("order_id", "sku"),
)

DAILY_SALES_TABLE = Table(
    "daily_sales",
    (
        Column("day", "date", nullable=False),
        Column("currency", "text", nullable=False),
        Column("orders_paid", "int", nullable=False),
        Column("paid_cents", "bigint", nullable=False),
        Column("orders_refunded", "int", nullable=False),
        Column("refunded_cents", "bigint", nullable=False),
    ),
    primary_key=("day", "currency"),
)

# The projection's own memory of each order (currency, amount paid): not read by the API.
DAILY_SALES_ORDERS_TABLE = Table(
    "daily_sales_orders",
    (
        Column("order_id", "uuid", nullable=False),
        Column("currency", "text", nullable=False),
        Column("paid_cents", "bigint", nullable=False),
    ),
    primary_key=("order_id",),
)
