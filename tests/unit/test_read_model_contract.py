"""The read-model contract (`readmodels`) is the one both sides take their names from."""

from uuid import UUID

from contexts.registered import REGISTRY
from projections.model import OpsProjection, SqlProjection
from projections.models import all_projections
from readmodels import catalog, fulfilment_catalog, keys
from readmodels.keys import RedisLayout

USER = UUID("6f1c1f5e-0000-4000-8000-000000000001")


def test_the_registered_read_models_are_the_nine_of_the_docs_each_written_by_one_projection() -> (
    None
):
    written = [projection.read_model for projection in all_projections()]
    assert written == list(REGISTRY.read_models)
    assert set(written) == {
        catalog.USER_PROFILES,
        catalog.USER_STATS,
        catalog.TOP_SPENDERS,
        catalog.USERS_DIRECTORY,
        catalog.ORDERS,
        catalog.DAILY_SALES,
        fulfilment_catalog.PAYMENTS,
        fulfilment_catalog.SHIPMENTS,
        fulfilment_catalog.FULFILMENTS,
    }


def test_each_context_declares_projections_that_fold_its_own_events() -> None:
    for context in REGISTRY:
        for projection in context.projections:
            assert context.name in projection.read_model.contexts, projection.__name__


def test_a_projections_shape_is_its_models_shape() -> None:
    for projection in all_projections():
        shape = "documents" if isinstance(projection, OpsProjection) else "tables"
        assert projection.read_model.shape == shape
        assert isinstance(projection, SqlProjection) == bool(projection.read_model.tables)


def test_a_projection_at_another_version_writes_that_version_of_the_same_model() -> None:
    orders = next(p for p in all_projections() if p.name == "orders")
    v3 = orders.at_version(3)
    assert (v3.name, v3.version, v3.label) == ("orders", 3, "orders:v3")
    assert orders.version == 1  # the original is left as it was
    assert v3.read_model == catalog.ORDERS.at(3)
    assert [t.name for t in v3.read_model.versioned_tables] == ["orders_v3", "order_lines_v3"]
    assert catalog.ORDERS.at(3).table_renames == {
        "orders": "orders_v3",
        "order_lines": "order_lines_v3",
    }
    assert catalog.ORDERS.table_renames == {}


def test_the_redis_layout_and_document_keys_are_those_of_the_docs() -> None:
    layout = RedisLayout()
    prefix = layout.prefix("user_profiles", 2)
    assert prefix + keys.user_profile_key(USER) == f"rm:{{user_profiles:v2}}:user:{USER}"
    assert keys.user_stats_key(USER) == f"stats:{USER}"
    assert keys.top_spenders_key("EUR") == "top:EUR"
    assert keys.order_attribution_key(USER) == f"order:{USER}"
    assert layout.checkpoint_key("user_stats", 1, "orders") == "rm:{user_stats:v1}:ckpt:orders"
    assert layout.stream_seq_key("user_stats", 1, "orders") == "rm:{user_stats:v1}:seq:orders"
    assert RedisLayout("t1").channel(3) == "t1:ckpt:db3"
    assert keys.redis_channel_for_url("redis://127.0.0.1:6379/4") == "rm:ckpt:db4"


def test_spent_fields_name_their_currency_and_nothing_else_does() -> None:
    assert keys.spent_currency(keys.SPENT_FIELD.format(currency="CHF")) == "CHF"
    assert keys.spent_currency("orders") is None
