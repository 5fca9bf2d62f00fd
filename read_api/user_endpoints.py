"""Queries on users: the profile document, the order stats, and the directory."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from domain.users.profile import MAX_CITY_LENGTH, MAX_HOBBY_LENGTH, MAX_NAME_LENGTH
from read_api import schemas
from read_api.paging import cut, key_text, key_uuid, scope
from read_api.params import (
    DEFAULT_LIMIT,
    City,
    CountryCode,
    Cursor,
    Hobby,
    Limit,
    NamePrefix,
    Uuid,
)
from read_api.reading import Reader, ReadRoute, reads
from read_api.resources import read_side
from read_api.stores import ReadStores, base
from read_api.stores.base import DirectoryQuery
from readmodels.catalog import USER_PROFILES, USER_STATS, USERS_DIRECTORY
from readmodels.formats import money_text
from runtime.auth.http import Caller
from runtime.auth.policy import Access, require

router = APIRouter(prefix="/users", tags=["users"], route_class=ReadRoute)
CONTEXT = "users"
"""A user reads their own profile and stats; the directory is for operators and `users:read`."""


def _text(max_length: int, description: str) -> Any:
    return Query(
        description=description,
        json_schema_extra={"minLength": 1, "maxLength": max_length},
    )


UserIdPath = Annotated[Uuid, Path(description="The user's id.")]
CityFilter = Annotated[
    City | None, _text(MAX_CITY_LENGTH, "Exact city name; surrounding spaces are ignored.")
]
HobbyFilter = Annotated[
    Hobby | None, _text(MAX_HOBBY_LENGTH, "A hobby, any case; surrounding spaces are ignored.")
]
NamePrefixFilter = Annotated[
    NamePrefix | None,
    _text(MAX_NAME_LENGTH, "Start of the name, any case; leading spaces are ignored."),
]


@router.get("", response_model=schemas.DirectoryPage)
async def directory(
    caller: Caller,
    request: Request,
    reader: Annotated[Reader, reads(USERS_DIRECTORY)],
    country: Annotated[
        CountryCode | None, Query(description="ISO 3166-1 alpha-2 code, any case.")
    ] = None,
    city: CityFilter = None,
    hobby: HobbyFilter = None,
    name_prefix: NamePrefixFilter = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> schemas.DirectoryPage:
    """Users by name (then id), filtered by any of country, city, hobby and name prefix."""
    require(caller, CONTEXT, Access.READ)
    filters = {"country": country, "city": city, "hobby": hobby, "name_prefix": name_prefix}
    bound_to = scope("users_directory", filters)
    after = None
    if cursor is not None:
        name_lower, last_id = read_side(request).cursors.decode(bound_to, cursor, 2)
        after = (key_text(name_lower), key_uuid(last_id))
    query = DirectoryQuery(
        country=country,
        city=city,
        hobby_lower=filters["hobby"],
        name_prefix_lower=filters["name_prefix"],
        after=after,
        limit=limit + 1,
    )
    rows = await reader.read(lambda stores: stores.relational.directory(query))
    page, next_cursor = cut(
        rows, limit, lambda e: [e.name_lower, str(e.id)], reader.side.cursors, bound_to
    )
    return schemas.DirectoryPage(items=[_entry(e) for e in page], next_cursor=next_cursor)


def _entry(entry: base.DirectoryEntry) -> schemas.DirectoryEntry:
    return schemas.DirectoryEntry(
        id=entry.id,
        name=entry.name,
        email=entry.email,
        city=entry.city,
        country=entry.country,
        hobbies=entry.hobbies,
        active=entry.active,
        version=entry.version,
        registered_at=entry.registered_at,
        updated_at=entry.updated_at,
    )


@router.get("/{user_id}", response_model=schemas.Profile)
async def profile(
    caller: Caller, user_id: UserIdPath, reader: Annotated[Reader, reads(USER_PROFILES)]
) -> schemas.Profile:
    """The user's profile document."""
    require(caller, CONTEXT, Access.READ, owner=user_id)
    found = await reader.read(lambda stores: stores.key_value.profile(user_id))
    if found is None:
        raise reader.not_found(f"no user {user_id} in the read model")
    return schemas.Profile(
        id=found.id,
        name=found.name,
        email=found.email,
        hobbies=found.hobbies,
        city=found.city,
        country=found.country,
        active=found.active,
        version=found.version,
        registered_at=found.registered_at,
        updated_at=found.updated_at,
    )


@router.get("/{user_id}/stats", response_model=schemas.Stats)
async def stats(
    caller: Caller,
    user_id: UserIdPath,
    reader: Annotated[Reader, reads(USER_PROFILES, USER_STATS)],
) -> schemas.Stats:
    """Orders created and money spent per currency. Zero for a known user without orders."""
    require(caller, CONTEXT, Access.READ, owner=user_id)

    def profile_and_stats(stores: ReadStores) -> tuple[bool, base.Stats | None]:
        return stores.key_value.profile(user_id) is not None, stores.key_value.stats(user_id)

    known, found = await reader.read(profile_and_stats)
    if found is None and not known:
        raise reader.not_found(f"no user {user_id} in the read model")
    found = found or base.Stats(orders=0, spent_cents={})
    return schemas.Stats(
        user_id=user_id,
        orders=found.orders,
        spent={currency: money_text(c, currency) for currency, c in found.spent_cents.items()},
    )
