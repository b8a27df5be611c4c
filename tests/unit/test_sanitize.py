"""plain_text: markup removed, entities decoded without bringing markup back, controls refused."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.security.sanitize import UnsafeText, plain_text

MARKUP_OPENER = re.compile(r"<(?:[A-Za-z!?]|/.)", re.DOTALL)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("  padded \n", "padded"),
        ("<script>alert(1)</script>hi", "hi"),
        ("<style>p{}</style>styled", "styled"),
        ("<b>bold</b> <a href='javascript:x'>link</a>", "bold link"),
        ("<img src=x onerror=alert(1)>", ""),
        ("<!-- hidden -->shown", "shown"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("<3 you", "<3 you"),
        ("a &lt; b", "a < b"),
        ("&amp;lt; is how you write <", "&lt; is how you write <"),
        ("a&nbsp;b", "a\u00a0b"),
        ("ends with </", "ends with </"),
        ("multi\nline\ttext", "multi\nline\ttext"),
        ("crlf\r\nand cr\rend", "crlf\nand cr\nend"),
        ("e\u0301", "\u00e9"),
        ("e&#769;", "\u00e9"),
        ("emoji 🎉 and 中文", "emoji 🎉 and 中文"),
    ],
)
def test_plain_text(raw: str, expected: str) -> None:
    assert plain_text(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "<title><script>alert(1)</script></title>",
        "<textarea><img src=x onerror=alert(1)></textarea>",
        "<noscript><b onclick=x>n</b></noscript>",
        "&lt;!-- comment --&gt;",
    ],
)
def test_decoded_entities_never_bring_markup_back(raw: str) -> None:
    text = plain_text(raw)
    assert not MARKUP_OPENER.search(text)
    assert "onerror" not in text
    assert "onclick" not in text


@pytest.mark.parametrize(
    "raw", ["nul\x00", "bell\x07", "escape\x1b[0m", "del\x7f", "c1\x9b", "vt\x0b", "ff\x0c"]
)
def test_control_characters_are_refused(raw: str) -> None:
    with pytest.raises(UnsafeText, match="control characters"):
        plain_text(raw)


@pytest.mark.parametrize("raw", ["&#12;", "&#x1b;", "&#13;&#12;", "a&#127;b&#x0c;"])
def test_control_characters_spelled_as_entities_are_refused(raw: str) -> None:
    with pytest.raises(UnsafeText):
        plain_text(raw)


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(UnsafeText):
        plain_text("broken \ud800 pair")


def test_deeply_nested_markup_is_refused() -> None:
    nested = "<textarea>" * 6 + "<b>x</b>"
    with pytest.raises(UnsafeText, match="nested"):
        plain_text(nested)


def test_unsafe_text_is_a_value_error() -> None:
    # pydantic turns ValueError raised in validators into 422 validation errors.
    assert issubclass(UnsafeText, ValueError)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
    | st.text("<>/!&;#ltgamp b", max_size=40)
)
def test_output_is_safe_plain_text(raw: str) -> None:
    try:
        text = plain_text(raw)
    except UnsafeText:
        return
    assert not MARKUP_OPENER.search(text)
    assert text == text.strip()
    assert unicodedata.is_normalized("NFC", text)
    assert all(ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs") for ch in text)
