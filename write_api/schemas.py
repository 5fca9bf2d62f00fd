"""Request and response bodies, strict about every input: unknown fields are refused, text
follows the one text rule, numbers and ids have one spelling each, money is a decimal string."""

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from domain.currencies import payment_currency
from domain.errors import InvalidValue
from domain.orders.order import MAX_QUANTITY, MAX_REASON_LENGTH, MAX_SKU_LENGTH, MIN_QUANTITY
from domain.users.profile import (
    MAX_CITY_LENGTH,
    MAX_HOBBY_LENGTH,
    MAX_NAME_LENGTH,
    addable_hobby,
)
from domain.values import (
    AMOUNT_DIGITS,
    CANONICAL_UUID,
    baseless_problem,
    country_code,
    invisible_problem,
    normalized_email,
    text_problem,
)
from runtime.http.money import Money


def _domain_check(check: Callable[[str], str]) -> AfterValidator:
    """Run a domain value check inside pydantic, so its message lands on the field."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except InvalidValue as error:
            raise ValueError(str(error)) from None

    return AfterValidator(validate)


def _follow_text_rule(value: object) -> object:
    """The text rule on the value as sent: it must run before whitespace is stripped, as
    str.strip would silently drop some refused characters (U+001C..U+001F, U+0085)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise PydanticCustomError("forbidden_character", problem)
    return value


S = TypeVar("S", bound=str)

PlainText = Annotated[S, Strict(), BeforeValidator(_follow_text_rule)]
"""`PlainText[X]`: the string type X, taking only a JSON string and applying the text rule
before any of X's own checks. Every text input of the API is one. (A BeforeValidator runs
ahead of the metadata listed before it only: hence a wrapper, not a prefix.)"""


def _trimmed(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


def _refusing(kind: str, problem_of: Callable[[str], str | None]) -> AfterValidator:
    """A check of trimmed text: the domain's `problem_of` it, as an error of type `kind`."""

    def check(value: str) -> str:
        problem = problem_of(value)
        if problem is not None:
            raise PydanticCustomError(kind, problem)
        return value

    return AfterValidator(check)


_VISIBLE = _refusing("invisible_text", invisible_problem)
"""After `_trimmed`: the trimmed text holds a character that shows."""
_BASED = _refusing("no_base_character", baseless_problem)
"""After `_VISIBLE`, for text a command brings: not only combining marks (a path naming a hobby
takes those, which profiles took before this rule)."""

Name = PlainText[Annotated[str, _trimmed(MAX_NAME_LENGTH), _VISIBLE, _BASED]]
Hobby = PlainText[Annotated[str, _trimmed(MAX_HOBBY_LENGTH), _VISIBLE]]
"""A hobby as it names one already in a profile (a path: `.` and `..` too, added before they
were refused)."""
AddedHobby = PlainText[
    Annotated[str, _trimmed(MAX_HOBBY_LENGTH), _VISIBLE, _BASED, _domain_check(addable_hobby)]
]
"""A hobby a profile may take: also not `.` or `..`, which no URL path can carry."""
City = PlainText[Annotated[str, _trimmed(MAX_CITY_LENGTH), _VISIBLE, _BASED]]
Country = PlainText[Annotated[str, _domain_check(country_code)]]
Currency = PlainText[Annotated[str, _domain_check(payment_currency)]]
"""A currency an order or a payment may be in (not XXX, XTS, metals, units or funds)."""
Email = PlainText[
    Annotated[str, StringConstraints(max_length=320), _domain_check(normalized_email)]
]
Sku = PlainText[
    Annotated[
        str,
        StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=MAX_SKU_LENGTH),
    ]
]
Reason = PlainText[Annotated[str, _trimmed(MAX_REASON_LENGTH), _VISIBLE, _BASED]]

PRICE_PATTERN = rf"^(0|[1-9][0-9]{{0,{AMOUNT_DIGITS - 1}}})(\.[0-9]{{1,2}})?$"
UnitPrice = PlainText[
    Annotated[
        str,
        StringConstraints(pattern=PRICE_PATTERN),
        Field(
            description="A non-negative amount as a JSON string of ASCII digits with at most 2"
            " decimals, and none in a currency without minor unit (JPY, KRW, ...): no sign,"
            " exponent, digit separator or surrounding space.",
            examples=["12.50", "3", "0.99"],
        ),
    ]
]
Quantity = Annotated[int, Strict(), Field(ge=MIN_QUANTITY, le=MAX_QUANTITY)]
"""A JSON integer: not a string, a boolean or a number with a fraction or exponent (1.0, 1e3)."""


def _canonical_uuid_text(value: object) -> object:
    """Only the hyphenated 36-character form: pydantic's UUID would also take braces, a `urn:`
    prefix or no hyphens, spellings this API never gives out."""
    if not isinstance(value, str) or CANONICAL_UUID.fullmatch(value) is None:
        raise PydanticCustomError(
            "uuid_format",
            "must be a UUID string in its hyphenated form of 36 characters,"
            " such as 2e31a84a-2ade-4076-83c6-62ab586bccdb",
        )
    return value


Id = Annotated[
    UUID,
    BeforeValidator(_canonical_uuid_text),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": CANONICAL_UUID.pattern}),
]
"""An aggregate id, in a body or a path."""


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
    hobby: AddedHobby


class ChangeLocation(Command):
    city: City
    country: Country


class CreateOrder(Command):
    user_id: Id
    currency: Currency


class AddLine(Command):
    sku: Sku
    quantity: Quantity
    unit_price: UnitPrice

    @property
    def price(self) -> Decimal:
        return Decimal(self.unit_price)


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
    unit_price: Money
    subtotal: Money


class OrderState(BaseModel):
    id: UUID
    version: int
    user_id: UUID
    currency: str
    status: str
    lines: list[OrderLineState]
    total: Money
    created_on: datetime
    modified_on: datetime
