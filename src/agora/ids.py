"""Ids are UUIDs inside and opaque strings outside."""

from __future__ import annotations

import uuid


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID a client-supplied id names, or None: a malformed id names nothing."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
