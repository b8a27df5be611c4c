"""The one check every client string passes: what PostgreSQL and HTTP cannot carry.

Every request schema field and every path/query parameter that is a string is declared with
``Text`` (or ``HeaderText``), so crafted input is a 422 at the edge instead of a 500 deep down:

- PostgreSQL ``text`` cannot hold NUL (U+0000): asyncpg raises ``CharacterNotInRepertoireError``
  on the query. A lone surrogate (JSON may spell one, ``\\ud800``) has no UTF-8 form: asyncpg,
  hashing and logging fail on it. Pydantic's ``str`` passes both through.
- An HTTP header value cannot carry CR or LF (response splitting), and Starlette encodes
  header values as latin-1: ``HeaderText`` is for a string that may be echoed into one.

``tests/unit/security/test_request_strings.py`` walks every route's inputs and fails on a string
that is not checked here, so a new field or route cannot forget it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

_LATIN1_MAX = 0xFF  # the highest code point an HTTP header can carry (latin-1)


def storable(value: str) -> str:
    """``value`` unchanged, or a ``ValueError`` (a 422) when PostgreSQL could not store it."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must not contain unpaired surrogates (not valid Unicode)") from None
    return value


def header_safe(value: str) -> str:
    """``value`` unchanged, or a ``ValueError`` when it cannot travel in an HTTP header."""
    storable(value)
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain line breaks (CR or LF)")
    if not value.isascii() and any(ord(ch) > _LATIN1_MAX for ch in value):
        raise ValueError("must contain only latin-1 characters")
    return value


# What the checks above let through, as JSON Schema patterns, so that the OpenAPI description
# states them and a generated client never sends what they refuse. (Lone surrogates have no
# pattern: a JSON Schema string is a sequence of Unicode scalar values, which excludes them.)
STORABLE_PATTERN = r"^[^\u0000]*$"
HEADER_SAFE_PATTERN = r"^[\u0001-\u0009\u000b\u000c\u000e-\u00ff]*$"


@dataclass(frozen=True, slots=True)
class DocumentedPattern:
    """Adds ``pattern`` to a string's JSON Schema unless a stricter constraint of the field
    set one: documentation only, the validator above is what enforces it."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema: dict[str, Any] = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if target.get("type") == "string":
            target.setdefault("pattern", self.pattern)
        return schema


Text = Annotated[str, AfterValidator(storable), DocumentedPattern(STORABLE_PATTERN)]
HeaderText = Annotated[str, AfterValidator(header_safe), DocumentedPattern(HEADER_SAFE_PATTERN)]
