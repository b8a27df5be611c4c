"""The patterns the OpenAPI description states are subsets of what the server accepts: any
string a generated client draws from them passes the server's own validation."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import EmailStr, TypeAdapter

from agora.security.sanitize import NONBLANK_PLAIN_TEXT_PATTERN, PLAIN_TEXT_PATTERN, plain_text
from agora.security.strings import HEADER_SAFE_PATTERN, STORABLE_PATTERN, header_safe, storable
from agora.services.auth.schemas import EMAIL_PATTERN
from agora.services.posts.schemas import PostCreate

_EMAIL = TypeAdapter(EmailStr)


@settings(max_examples=100)
@given(st.from_regex(NONBLANK_PLAIN_TEXT_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 500))
def test_a_post_the_pattern_allows_is_accepted_with_its_length(content: str) -> None:
    assert PostCreate(content=content).content  # neither refused nor emptied


@settings(max_examples=100)
@given(st.from_regex(PLAIN_TEXT_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 50))
def test_plain_text_the_pattern_allows_keeps_within_its_length(text: str) -> None:
    assert len(plain_text(text)) <= len(text)


@settings(max_examples=100)
@given(st.from_regex(EMAIL_PATTERN, fullmatch=True))
def test_an_email_the_pattern_allows_is_accepted(address: str) -> None:
    assert len(address) <= 254
    _EMAIL.validate_python(address)


@settings(max_examples=100)
@given(
    st.from_regex(STORABLE_PATTERN, fullmatch=True),
    st.from_regex(HEADER_SAFE_PATTERN, fullmatch=True),
)
def test_text_and_header_text_the_patterns_allow_are_accepted(text: str, header: str) -> None:
    assert storable(text) == text
    assert header_safe(header) == header


def test_the_patterns_refuse_what_the_server_refuses() -> None:
    assert not re.fullmatch(STORABLE_PATTERN, "a\x00b")
    assert not re.fullmatch(HEADER_SAFE_PATTERN, "a\r\nb")
    assert not re.fullmatch(NONBLANK_PLAIN_TEXT_PATTERN, "  \n ")
    assert not re.fullmatch(PLAIN_TEXT_PATTERN, "<b>x</b>")  # accepted by the server, not stated
    assert not re.fullmatch(EMAIL_PATTERN, "someone@example.test")
