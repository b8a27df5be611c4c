"""The realtime wire formats: the presence response, and the JSON frames sent on ``/ws``.

Outbound frames are serialised once per event with orjson and the same ``str`` is queued
for every recipient socket, so a fan-out to N sockets costs one encoding, not N.
"""

from __future__ import annotations

from typing import Final, Literal

import orjson
from pydantic import BaseModel

from agora.errors import websocket_error_frame
from agora.events import Event

ErrorCode = Literal[
    "malformed_message", "unknown_type", "rate_limited", "invalid_token", "too_many_connections"
]


class PresencePublic(BaseModel):
    user_id: str
    online: bool


def event_frame(event: Event) -> str:
    """``{"type": "post.created", "post": {...}}`` or ``{"type": "notification",
    "notification": {...}}``: the event's type and its payload's fields."""
    return orjson.dumps({**event.payload, "type": event.type}).decode()


def error_frame(code: ErrorCode, message: str, **fields: int) -> str:
    return websocket_error_frame(code, message, **fields)


def auth_ok_frame(valid_until: int) -> str:
    """The answer to an in-band ``auth``: the socket now lives until ``valid_until``."""
    return orjson.dumps({"type": "auth.ok", "valid_until": valid_until}).decode()


PONG_FRAME: Final = orjson.dumps({"type": "pong"}).decode()


def draining_frame(reconnect_after_ms: int) -> str:
    return orjson.dumps(
        {"type": "server.draining", "reconnect_after_ms": reconnect_after_ms}
    ).decode()
