"""Identity's request and response bodies. Text follows the repository's one text rule; a
password is not trimmed (every character counts) but may hold no control character."""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints

from domain.errors import InvalidValue
from domain.users.profile import MAX_NAME_LENGTH
from domain.values import CANONICAL_UUID, bounded_text, normalized_email
from identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, password_problem


def _checked(check: Any) -> AfterValidator:
    def validate(value: str) -> str:
        try:
            return str(check(value))
        except InvalidValue as error:
            raise ValueError(str(error)) from None

    return AfterValidator(validate)


def _password(value: str) -> str:
    problem = password_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Name = Annotated[
    str,
    Strict(),
    StringConstraints(max_length=4 * MAX_NAME_LENGTH),
    _checked(lambda v: bounded_text(v, field="name", max_length=MAX_NAME_LENGTH)),
]
Email = Annotated[str, Strict(), StringConstraints(max_length=320), _checked(normalized_email)]
Password = Annotated[
    str,
    Strict(),
    Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
    AfterValidator(_password),
]
UserId = Annotated[
    str, Strict(), StringConstraints(pattern=CANONICAL_UUID.pattern), AfterValidator(str.lower)
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignUpRequest(Body):
    name: Name
    email: Email
    password: Password


class AccountRequest(Body):
    """An account for a profile that exists (an operator's act): its address is the profile's."""

    user_id: UserId
    password: Password


class PasswordChange(Body):
    current_password: Annotated[
        str, Strict(), StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    ]
    new_password: Password


class PasswordChanged(BaseModel):
    signed_out: int = Field(description="The user's sign-ins (refresh-token families) revoked.")


class Account(BaseModel):
    user_id: str
    email: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the token type, not a token
    expires_in: int
    refresh_token: str | None = None


class RotatedKey(BaseModel):
    kid: str
    active_from: int = Field(description="Epoch seconds from which it signs.")


FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {
                            "type": "string",
                            "enum": ["password", "refresh_token", "client_credentials"],
                        },
                        "username": {"type": "string", "description": "password: the email"},
                        "password": {"type": "string"},
                        "refresh_token": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "scope": {"type": "string", "description": "Ignored."},
                    },
                }
            }
        },
    }
}
