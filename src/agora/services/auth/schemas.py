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
)

from agora.security.passwords import is_common_password
from agora.security.sanitize import plain_text
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
    Text, BeforeValidator(_lowercase), StringConstraints(pattern=r"^[a-z0-9_]{3,30}$")
]
Email = Annotated[EmailStr, AfterValidator(storable)]
# The raw bound only caps the sanitiser's work; the real limit applies to the plain text.
DisplayName = Annotated[
    Text,
    Field(max_length=DISPLAY_NAME_MAX * 10, description="plain text, markup is removed"),
    AfterValidator(_plain_text(DISPLAY_NAME_MAX)),
]
Bio = Annotated[
    Text,
    Field(max_length=BIO_MAX * 10, description="plain text, markup is removed"),
    AfterValidator(_plain_text(BIO_MAX)),
]
Password = Annotated[Text, Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]


def _not_common(password: str) -> str:
    if is_common_password(password):
        raise ValueError("this password is one of the most common ones; choose another")
    return password


NewPassword = Annotated[Password, AfterValidator(_not_common)]


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
