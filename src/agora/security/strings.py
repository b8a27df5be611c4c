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

from typing import Annotated

from pydantic import AfterValidator

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


Text = Annotated[str, AfterValidator(storable)]
HeaderText = Annotated[str, AfterValidator(header_safe)]
