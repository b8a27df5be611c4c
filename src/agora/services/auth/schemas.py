"""Request and response bodies of the auth service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from agora.security.passwords import is_common_password
from agora.security.sanitize import plain_text, plain_text_schema
from agora.security.strings import HeaderText, Text, storable

DISPLAY_NAME_MAX = 50
BIO_MAX = 300
PASSWORD_MIN = 10
PASSWORD_MAX = 1024  # bounds the argon2 work one request can ask for


def _lowercase(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _plain_text(max_chars: int) -> Callable[[str], str]:
    def validate(value: str) -> str:
        text = plain_text(value)  # UnsafeText is a ValueError: pydantic reports it as a 422
        if len(text) > max_chars:
            raise ValueError(f"must be at most {max_chars} characters of plain text")
        return text

    return validate


Username = Annotated[
    Text,
    BeforeValidator(_lowercase),
    StringConstraints(pattern=r"^[a-z0-9_]{3,30}$"),
    # What the client may send (the lower-casing comes first), not what is stored.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_]{3,30}$",
            "minLength": 3,
            "maxLength": 30,
            "description": "3-30 letters, digits or underscores; stored in lower case, "
            "unique without regard to case",
        }
    ),
]


def _any_case(word: str) -> str:
    return "".join(f"[{ch.upper()}{ch}]" for ch in word)


# The JSON Schema's ``format: email`` (RFC 5321) allows more than email-validator accepts:
# quoted local parts, address literals, special-use domains (``.test``, ``.local``, …), IDNA
# labels. The description states a subset that is always accepted instead.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,39}"
_SPECIAL_USE = "|".join(
    _any_case(name) for name in ("arpa", "invalid", "local", "localhost", "onion", "test")
)
EMAIL_PATTERN = (
    rf"^{_ATEXT}{{1,32}}(?:\.{_ATEXT}{{1,31}})?@(?:{_LABEL}\.){{1,3}}"
    rf"(?!(?:{_SPECIAL_USE})$)[A-Za-z]{{2,63}}$"
)
Email = Annotated[
    EmailStr,
    AfterValidator(storable),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": EMAIL_PATTERN,
            "maxLength": 254,
            "description": "an e-mail address (email-validator's rules, without deliverability "
            "checks: special-use domains such as .test and .local are refused); the pattern is "
            "a subset that is always accepted",
        }
    ),
]
# The raw bound only caps the sanitiser's work; the real limit applies to the plain text.
_PLAIN = (
    "plain text: markup is removed and entities decoded, then at most {max} characters may "
    "remain (after Unicode NFC normalisation); control characters other than newline and tab "
    "are refused"
)
DisplayName = Annotated[
    Text,
    Field(max_length=DISPLAY_NAME_MAX * 10),
    AfterValidator(_plain_text(DISPLAY_NAME_MAX)),
    plain_text_schema(
        max_chars=DISPLAY_NAME_MAX, required=False, description=_PLAIN.format(max=DISPLAY_NAME_MAX)
    ),
]
Bio = Annotated[
    Text,
    Field(max_length=BIO_MAX * 10),
    AfterValidator(_plain_text(BIO_MAX)),
    plain_text_schema(max_chars=BIO_MAX, required=False, description=_PLAIN.format(max=BIO_MAX)),
]
Password = Annotated[Text, Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]


def _not_common(password: str) -> str:
    if is_common_password(password):
        raise ValueError("this password is one of the most common ones; choose another")
    return password


# The one rule a schema cannot state; a client is told in the description (and by the 422).
NewPassword = Annotated[
    Password,
    AfterValidator(_not_common),
    Field(description="10-1024 characters, not one of the most common passwords"),
]


class UserCreate(BaseModel):
    username: Username
    email: Email
    password: NewPassword
    display_name: DisplayName = ""


class LoginRequest(BaseModel):
    username: Annotated[Text, Field(min_length=1, max_length=320, description="username or e-mail")]
    password: Annotated[Text, Field(min_length=1, max_length=PASSWORD_MAX)]


class AccountDeletion(BaseModel):
    password: Annotated[Text, Field(min_length=1, max_length=PASSWORD_MAX)]


class RefreshRequest(BaseModel):
    # Also accepted from the refresh cookie: a body token must be one a Cookie header can carry.
    refresh_token: Annotated[HeaderText, Field(min_length=1, max_length=256)]


class PasswordChange(BaseModel):
    current_password: Annotated[Text, Field(min_length=1, max_length=PASSWORD_MAX)]
    new_password: NewPassword


class SessionPublic(BaseModel):
    """One login session (a refresh-token family and the access tokens issued from it)."""

    id: str
    created_at: datetime = Field(description="when the session logged in")
    last_refreshed_at: datetime = Field(description="when its refresh token was last rotated")
    expires_at: datetime = Field(description="when it ends unless refreshed")
    current: bool = Field(description="the session of the access token of this request")


class SessionList(BaseModel):
    items: list[SessionPublic]


class ProfileUpdate(BaseModel):
    """Fields left out (or null) stay as they are."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    bio: Bio | None = None


class UserPublic(BaseModel):
    id: str
    username: str
    display_name: str
    bio: str
    created_at: datetime


class UserProfile(UserPublic):
    """The caller's own profile."""

    email: str
    updated_at: datetime


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    refresh_token: str


class Jwks(BaseModel):
    keys: list[dict[str, Any]]
