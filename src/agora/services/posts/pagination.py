"""Opaque keyset cursors: the (created_at, id) of the last item a page returned.

A cursor is base64url (unpadded) of ``v1|<ISO 8601 timestamp>|<uuid>``. It is a position, not
a capability: tampering can only move the reader within rows the query already restricts to
them, so it is not signed. The version prefix lets the format change without misreading
cursors that clients still hold.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

_VERSION = "v1"
# A v1 cursor is about 90 characters; anything much longer is not one of ours.
MAX_CURSOR_LENGTH = 200
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"  # unpadded base64url, as the description states it
_ALPHABET = re.compile(CURSOR_PATTERN.strip("^$"))

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class InvalidCursor(ValueError):
    """The cursor was not produced by this service (or is from an unknown version)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Keyset position: the next page holds items strictly older than this one."""

    created_at: datetime
    id: uuid.UUID


def encode_cursor(created_at: datetime, item_id: uuid.UUID | str) -> str:
    if created_at.tzinfo is None:
        raise ValueError("cursor timestamps must be timezone-aware")
    stamp = created_at.astimezone(UTC).isoformat()
    raw = f"{_VERSION}|{stamp}|{uuid.UUID(str(item_id))}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(value: str) -> Cursor:
    """The position in ``value``, or ``InvalidCursor`` for anything else."""
    if len(value) > MAX_CURSOR_LENGTH or not _ALPHABET.fullmatch(value):
        raise InvalidCursor("malformed cursor")
    try:
        padded = value + "=" * (-len(value) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
        version, stamp, item_id = raw.split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("malformed cursor") from exc
    if version != _VERSION:
        raise InvalidCursor("unsupported cursor version")
    try:
        created_at = datetime.fromisoformat(stamp)
        parsed_id = uuid.UUID(item_id)
        # The database driver converts to UTC: an instant at the edge of datetime's range with
        # a far offset (0001-01-01T00:00+14:00) has no UTC form, and must fail here, as a 400.
        in_utc = created_at.astimezone(UTC) if created_at.tzinfo is not None else None
    except (ValueError, OverflowError) as exc:
        raise InvalidCursor("malformed cursor") from exc
    if in_utc is None:
        raise InvalidCursor("malformed cursor")
    return Cursor(created_at=in_utc, id=parsed_id)
