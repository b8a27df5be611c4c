"""User text to plain text: markup removed, Unicode NFC-normalised, control characters refused.

The result is *plain text*: responses are JSON and clients must render it as text. Entities are
decoded (``Tom &amp; Jerry`` is stored as ``Tom & Jerry``) so that plain-text clients do not
show HTML escapes. Decoding could hand back markup (``&lt;script&gt;``, or the raw-text content
of ``<title>`` / ``<textarea>``, which the HTML parser treats as text), so the conversion is
repeated until no tag, comment or declaration opener (``<`` followed by a letter, ``/``, ``!``
or ``?``) is left. As defence in depth, a client that wrongly renders the text as HTML still
finds no element in it; a literal ``<`` survives only where a parser sees text (``1 < 2``,
``<3``). Text that still opens markup after a few rounds is deliberately nested and refused.
"""

from __future__ import annotations

import html
import re
import unicodedata

import nh3
from pydantic import WithJsonSchema

# Each round undoes one level of entity encoding; real text needs one, quoted markup two.
_MAX_ROUNDS = 4
# What starts a tag, end tag, comment or bogus comment in the HTML tokenizer (a "</" that ends
# the text is emitted as text by it, and harmless).
_MARKUP_OPENER = re.compile(r"<(?:[A-Za-z!?]|/.)", re.DOTALL)
# Categories refused outright: control characters (NUL, ESC, ... - not newline or tab) and
# lone surrogates, which JSON can carry but UTF-8 (and so PostgreSQL) cannot.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})
_ALLOWED_CONTROLS = frozenset("\n\t")


class UnsafeText(ValueError):
    """The text contains characters or markup that is refused rather than silently altered."""


def _normalise_newlines(value: str) -> str:
    # Browsers submit textarea content with CRLF; a bare CR is an old Mac line end.
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _refuse_controls(value: str) -> None:
    for ch in value:
        if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise UnsafeText("control characters are not allowed")


def _html_to_text(value: str) -> str:
    return html.unescape(nh3.clean(value, tags=set()))


def plain_text(value: str) -> str:
    """Plain text from user input, or ``UnsafeText`` (a ``ValueError``: pydantic makes it a 422)."""
    text = _normalise_newlines(unicodedata.normalize("NFC", value))
    _refuse_controls(text)
    for _ in range(_MAX_ROUNDS):
        text = _html_to_text(text)
        if not _MARKUP_OPENER.search(text):
            break
    else:
        raise UnsafeText("text contains nested markup")
    # Decoded entities may spell control characters (&#12;) or decomposed accents (e&#769;).
    text = _normalise_newlines(unicodedata.normalize("NFC", text))
    _refuse_controls(text)
    return text.strip()


# What ``plain_text`` always accepts unchanged in length, as a JSON Schema pattern for the
# OpenAPI description: no refused control character (CR is allowed: it becomes a newline),
# no ``<`` that opens markup and no ``&`` that starts an entity (markup and entities are
# accepted too, but what they leave cannot be bounded by a pattern).
_SAFE_CHAR = (
    r"[^<&\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]|<(?![A-Za-z/!?])|&(?![#A-Za-z])"
)
PLAIN_TEXT_PATTERN = rf"^(?:{_SAFE_CHAR})*$"
# The same, with at least one character that is not whitespace (what a required field needs).
NONBLANK_PLAIN_TEXT_PATTERN = rf"^(?=[\s\S]*\S)(?:{_SAFE_CHAR})*$"


def plain_text_schema(*, max_chars: int, required: bool, description: str) -> WithJsonSchema:
    """The JSON Schema of a plain-text field: the subset of input that is always accepted.
    The server accepts more (markup it removes, entities it decodes), as ``description``
    says; a schema-valid value is never refused."""
    schema: dict[str, object] = {
        "type": "string",
        "maxLength": max_chars,
        "pattern": NONBLANK_PLAIN_TEXT_PATTERN if required else PLAIN_TEXT_PATTERN,
        "description": description,
    }
    if required:
        schema["minLength"] = 1
    return WithJsonSchema(schema)
