"""Domain events on Redis pub/sub: posts publishes them, every realtime instance receives all.

One channel for the whole system keeps fan-out simple and correct with any number of realtime
instances: each instance delivers an event only to the sockets it holds itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from opentelemetry.trace import SpanKind

from agora.observability import tracing
from agora.observability.logging import get_logger
from agora.redis import uses
from agora.redis.access import RedisAccess, RedisUnavailable

log = get_logger(__name__)

EventType = Literal["post.created", "notification", "account.deleted", "session.ended"]
EVENT_TYPES: frozenset[str] = frozenset(
    ("post.created", "notification", "account.deleted", "session.ended")
)


@dataclass(frozen=True, slots=True)
class Event:
    """``post.created`` goes to the online followers of ``author_id``;
    ``notification`` goes to ``recipient_id``. The client receives ``payload``'s fields
    beside ``type``: ``{"type": "post.created", "post": {...}}``. ``account.deleted`` reaches
    no client: every realtime instance closes the open sockets of ``recipient_id``;
    ``session.ended`` neither: every instance closes the sockets of ``recipient_id`` opened
    with a token of one of ``payload["session_ids"]``."""

    type: EventType
    payload: dict[str, Any]
    author_id: str | None = None
    recipient_id: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "type": self.type,
                "payload": self.payload,
                "author_id": self.author_id,
                "recipient_id": self.recipient_id,
                "meta": self.meta,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Event:
        data = orjson.loads(raw)
        if data.get("type") not in EVENT_TYPES:
            raise ValueError(f"unknown event type {data.get('type')!r}")
        return cls(
            type=data["type"],
            payload=dict(data["payload"]),
            author_id=data.get("author_id"),
            recipient_id=data.get("recipient_id"),
            meta=dict(data.get("meta") or {}),
        )


async def publish(access: RedisAccess, channel: str, event: Event) -> bool:
    """Publish after the write has committed. A Redis failure, or a Redis slower than the
    ``events_publish`` use's timeout (the client's own retries included), is logged, never
    raised: the write is already durable and the recipient still finds it in the feed or
    notifications.

    The trace context travels in ``meta`` (``traceparent``), so the delivery over WebSocket
    joins the trace of the request that caused the event."""
    attributes = {"messaging.system": "redis", "messaging.destination.name": channel}
    with tracing.span(f"publish {event.type}", kind=SpanKind.PRODUCER, attributes=attributes):
        tracing.inject(event.meta)
        data = event.encode()
        try:
            await access.call(uses.EVENTS_PUBLISH, lambda r: r.publish(channel, data))
        except RedisUnavailable as exc:
            log.warning("event not published", event_type=event.type, error=str(exc.cause))
            return False
        return True
