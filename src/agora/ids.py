"""Ids are UUIDs inside and opaque strings outside."""

from __future__ import annotations

import re
import uuid

_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID a client-supplied id names, or None: a malformed id names nothing."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def canonical_uuid(value: str) -> str | None:
    """``str(parse_uuid(value))``: the id in the one form a UUID prints as, or None. An id
    already in that form (every id Agora hands out) is returned as it is, without building
    the UUID and printing it again: cache keys are built from ids on every cached read."""
    if _CANONICAL.fullmatch(value):
        return value
    parsed = parse_uuid(value)
    return str(parsed) if parsed is not None else None
