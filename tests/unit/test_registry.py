"""The registry: what a declaration derives from its name, and the declarations it refuses."""

import dataclasses

import pytest

from contexts.orders import ORDERS
from contexts.registered import REGISTRY
from contexts.registry import Registry, UnknownContext
from domain.orders.transcodings import OrderLineAsDict, OrderStatusAsStr
from domain.users.profile import UserProfile
from tests.support.notes_context import NOTES, NotesList


def test_a_declaration_derives_its_store_and_stream_from_its_name() -> None:
    assert (ORDERS.database_url_variable, ORDERS.database_name, ORDERS.sqlite_file) == (
        "STRATA_ORDERS_DATABASE_URL",
        "strata_orders",
        "orders.sqlite",
    )
    assert (ORDERS.stream_name, ORDERS.subject_root) == ("ES_ORDERS", "es.orders")


def test_a_declaration_lists_its_events_and_transcodings() -> None:
    users = REGISTRY["users"]
    assert UserProfile.Registered in users.event_types
    assert UserProfile.Renamed in users.event_types
    assert {type(t) for t in ORDERS.transcodings} == {OrderStatusAsStr, OrderLineAsDict}


def test_with_makes_a_new_registry_and_leaves_the_registered_one_alone() -> None:
    extended = REGISTRY.with_(NOTES)

    assert extended.names == (*REGISTRY.names, "notes")
    assert "notes" not in REGISTRY
    with pytest.raises(UnknownContext, match="unknown context 'notes'; use users or orders or"):
        REGISTRY["notes"]


def test_a_context_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="contexts declared twice: notes"):
        Registry(NOTES, NOTES)


@pytest.mark.parametrize("name", ["Notes", "read", "no-tes", ""])
def test_a_context_name_that_cannot_name_a_variable_or_a_database_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="a context name is lowercase letters and digits"):
        dataclasses.replace(NOTES, name=name)


def test_a_declaration_whose_application_has_another_name_is_refused() -> None:
    with pytest.raises(ValueError, match="declares application OrdersService, whose name"):
        dataclasses.replace(NOTES, application=ORDERS.application)


def test_the_registry_lists_the_projections_read_models_and_read_routers_its_contexts_declare() -> (
    None
):
    extended = REGISTRY.with_(NOTES)

    assert [model.name for model in extended.read_models] == [
        "user_profiles",
        "users_directory",
        "orders",
        "daily_sales",
        "user_stats",
        "top_spenders",
        "payments",
        "shipments",
        "fulfilments",
        "notes",
    ]
    assert [p.read_model for p in extended.projections()] == list(extended.read_models)
    assert isinstance(extended.projections()[-1], NotesList)
    assert extended.read_routers[-1] is NOTES.read_router
    assert len(REGISTRY.read_routers) == 5


def test_a_read_model_declared_by_two_contexts_is_refused() -> None:
    orders_too = dataclasses.replace(ORDERS, projections=(*ORDERS.projections, NotesList))
    with pytest.raises(ValueError, match="read models declared twice: notes"):
        Registry(orders_too, NOTES)
