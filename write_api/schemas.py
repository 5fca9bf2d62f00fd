"""Request and response bodies. Unknown fields are rejected; money travels as a decimal string."""

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from domain.errors import InvalidValue
from domain.orders.order import MAX_QUANTITY, MAX_REASON_LENGTH, MAX_SKU_LENGTH, MIN_QUANTITY
from domain.users.profile import MAX_CITY_LENGTH, MAX_HOBBY_LENGTH, MAX_NAME_LENGTH
from domain.values import country_code, currency_code, normalized_email


def _domain_check(check: Callable[[str], str]) -> AfterValidator:
    """Run a domain value check inside pydantic, so its message lands on the field."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except InvalidValue as error:
            raise ValueError(str(error)) from None

    return AfterValidator(validate)


def _text(max_length: int) -> object:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


Name = Annotated[str, _text(MAX_NAME_LENGTH)]
Hobby = Annotated[str, _text(MAX_HOBBY_LENGTH)]
City = Annotated[str, _text(MAX_CITY_LENGTH)]
Country = Annotated[str, _domain_check(country_code)]
Currency = Annotated[str, _domain_check(currency_code)]
Email = Annotated[str, StringConstraints(max_length=320), _domain_check(normalized_email)]
Sku = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=MAX_SKU_LENGTH)
]
Reason = Annotated[str, _text(MAX_REASON_LENGTH)]
UnitPrice = Annotated[Decimal, Field(ge=0, decimal_places=2, max_digits=14, allow_inf_nan=False)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterUser(Command):
    name: Name
    email: Email


class RenameUser(Command):
    name: Name


class ChangeEmail(Command):
    email: Email


class AddHobby(Command):
    hobby: Hobby


class ChangeLocation(Command):
    city: City
    country: Country


class CreateOrder(Command):
    user_id: UUID
    currency: Currency


class AddLine(Command):
    sku: Sku
    quantity: int = Field(ge=MIN_QUANTITY, le=MAX_QUANTITY)
    unit_price: UnitPrice


class CancelOrder(Command):
    reason: Reason


class Accepted(BaseModel):
    """What every command returns: the aggregate, its new version, and the log position."""

    id: UUID
    version: int
    position: str = Field(description="`<context>:<position>`; pass it to the read side.")


class UserProfileState(BaseModel):
    id: UUID
    version: int
    name: str
    email: str
    hobbies: list[str]
    city: str | None
    country: str | None
    active: bool
    created_on: datetime
    modified_on: datetime


class OrderLineState(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal
    subtotal: Decimal


class OrderState(BaseModel):
    id: UUID
    version: int
    user_id: UUID
    currency: str
    status: str
    lines: list[OrderLineState]
    total: Decimal
    created_on: datetime
    modified_on: datetime
