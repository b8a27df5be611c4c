"""Request and response bodies of the posts service (pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from agora.security.sanitize import plain_text, plain_text_schema
from agora.security.strings import Text

MAX_CONTENT_LENGTH = 500
# Markup is stripped before the 500-character limit applies, so the raw text may be longer;
# this bound keeps the sanitiser's work per request small whatever a client sends.
MAX_RAW_CONTENT_LENGTH = 10_000


def _post_content(value: str) -> str:
    if len(value) > MAX_RAW_CONTENT_LENGTH:
        raise ValueError(f"content must be at most {MAX_CONTENT_LENGTH} characters")
    text = plain_text(value)
    if not text:
        raise ValueError("content must not be empty once markup and whitespace are removed")
    if len(text) > MAX_CONTENT_LENGTH:
        raise ValueError(f"content must be at most {MAX_CONTENT_LENGTH} characters")
    return text


PostContent = Annotated[
    Text,
    AfterValidator(_post_content),
    plain_text_schema(
        max_chars=MAX_CONTENT_LENGTH,
        required=True,
        description="Plain text: markup is removed and entities decoded, then 1-500 characters "
        "must remain (after Unicode NFC normalisation and trimming); control characters other "
        "than newline and tab are refused. The raw text may be at most 10,000 characters.",
    ),
]


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    content: PostContent


class PostPublic(BaseModel):
    id: str
    author_id: str
    content: str
    like_count: int
    liked_by_me: bool
    created_at: datetime


class PostPage(BaseModel):
    items: list[PostPublic]
    next_cursor: str | None


class NotificationPublic(BaseModel):
    id: str
    kind: Literal["follow", "like"]
    actor_id: str
    post_id: str | None
    created_at: datetime
    read: bool


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    next_cursor: str | None


class FollowState(BaseModel):
    user_id: str
    following: bool
