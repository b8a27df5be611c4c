"""PII and secret redaction, as a structlog processor every log line passes through.

It runs in the formatter of every handler Agora installs, after exceptions are rendered to
text, so neither a structlog call, a standard-library logger (uvicorn, asyncpg, httpx) nor a
traceback can carry an e-mail address, a password, a JWT, a bearer or refresh token, or an
``Authorization``/``Cookie`` header to the output. Values under sensitive keys are replaced
whole; every other string is scanned for the shapes above.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from structlog.types import EventDict

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authori[sz]ation|cookie|e-?mail|api[-_]?key|"
    r"credential|csrf|private[-_]?key",
    re.IGNORECASE,
)
# Whole header lines: everything after the colon is the secret.
_HEADER_LINE = re.compile(
    r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|x-csrf-token)(\s*[:=]\s*)"
    r"[^\r\n]*"
)
_SCHEME_TOKEN = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# key=value / "key": "value" pairs in free text (query strings, reprs, JSON).
_KEY_VALUE = re.compile(
    r"(?i)\b((?:access|refresh|id)?_?token|password|passwd|secret|api_?key)"
    r"(\"?'?\s*[:=]\s*\"?'?)[^\s\"'&,;)}\]]+"
)
# Three base64url segments whose first decodes to a JSON object ("{" -> "eyJ"): a JWT/JWS.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def redact_text(text: str) -> str:
    # The substring tests keep the common case (nothing to redact) to a few fast scans.
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "@" in text:
        text = _EMAIL.sub(REDACTED, text)
    lowered = text.lower()
    if "auth" in lowered or "cookie" in lowered or "csrf" in lowered:
        text = _HEADER_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    if "bearer" in lowered or "basic" in lowered:
        text = _SCHEME_TOKEN.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if "token" in lowered or "pass" in lowered or "secret" in lowered or "key" in lowered:
        text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return text


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and _is_sensitive_key(key) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else is rendered with str() by the renderer: redact that text instead.
    return redact_text(str(value))


# Fields Agora itself fills with values it controls (validated ids, numbers, templates):
# scanning them on every line would only cost time.
_TRUSTED_KEYS = frozenset(
    {
        "level",
        "logger",
        "timestamp",
        "service.name",
        "http.request.id",
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "event.duration",
        "user.id",
        "trace.id",
        "span.id",
    }
)


@functools.lru_cache(maxsize=1024)
def _is_sensitive_key(key: str) -> bool:
    return _SENSITIVE_KEY.search(key) is not None


def redact_processor(_: Any, __: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if key in _TRUSTED_KEYS:
            continue
        if _is_sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value)
    return event_dict
