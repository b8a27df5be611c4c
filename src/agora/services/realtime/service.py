"""Realtime domain logic: one socket's session, client messages, and event fan-out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import orjson
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind
from starlette.websockets import WebSocket

from agora.db import Database
from agora.errors import ApiError
from agora.events import Event
from agora.ids import parse_uuid
from agora.observability import tracing
from agora.observability.logging import get_logger
from agora.observability.metrics import RATELIMIT_REJECTIONS, WEBSOCKET_MESSAGES
from agora.ratelimit.websocket import MessageLimits, Verdict
from agora.security.tokens import Principal
from agora.services.realtime import repository
from agora.services.realtime.hub import (
    ACCOUNT_DELETED_CLOSE_CODE,
    TOKEN_EXPIRED_CLOSE_CODE,
    Connection,
    FrameType,
    Hub,
)
from agora.services.realtime.presence import Presence
from agora.services.realtime.schemas import PONG_FRAME, auth_ok_frame, error_frame, event_frame

_SHOWN_TYPE_CHARS = 64  # an unknown type echoed back is cut: the reply must stay small


log = get_logger(__name__)

_RECEIVED = {
    kind: WEBSOCKET_MESSAGES.labels("in", kind) for kind in ("ping", "auth", "unknown", "malformed")
}
_WS_REJECTIONS = RATELIMIT_REJECTIONS.labels("websocket")
POLICY_VIOLATION = 1008


def canonical_user_id(raw: str) -> str | None:
    """Ids as PostgreSQL renders them, so ids from tokens, paths and events compare equal."""
    parsed = parse_uuid(raw)
    return None if parsed is None else str(parsed)


async def may_see_presence(db: Database, *, viewer_id: str, user_id: str) -> bool:
    """Whether ``viewer_id`` may see if ``user_id`` is online: the user themself, and the
    accounts the user follows (docs/security.md, *Presence*). Following is one-sided and
    needs no consent, so "my followers see me" would let anyone in by following first;
    "those I follow see me" leaves the choice to the user, and asking the viewer to follow
    back as well (mutuals) would add nothing the viewer cannot do alone."""
    if viewer_id == user_id:
        return True
    # A replica may answer: a follow a moment old showing a moment late is harmless.
    async with db.connection(read_only=True) as conn:
        return await repository.follows(conn, follower_id=user_id, followee_id=viewer_id)


async def user_presence(presence: Presence, *, user_id: str) -> bool:
    """Without Redis: 503 ``unavailable`` with Retry-After (``presence_read`` fails closed)."""
    return await presence.is_online(user_id)


def answer(text: str | None, data: bytes | None) -> tuple[str, FrameType]:
    """The reply to one client frame. Errors are answered, never fatal: the socket stays open."""
    message = decode(text, data)
    return message if isinstance(message, tuple) else reply_to(message)


def decode(text: str | None, data: bytes | None) -> dict[str, Any] | tuple[str, FrameType]:
    """The client's JSON object, or the error frame that answers a malformed one."""
    raw = text if text is not None else data
    try:
        message = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        _RECEIVED["malformed"].inc()
        return error_frame("malformed_message", "messages must be JSON"), "error"
    if not isinstance(message, dict):
        _RECEIVED["malformed"].inc()
        reason = 'a message must be a JSON object with a "type"'
        return error_frame("malformed_message", reason), "error"
    return message


def reply_to(message: dict[str, Any]) -> tuple[str, FrameType]:
    kind = message.get("type")
    if kind == "ping":
        _RECEIVED["ping"].inc()
        return PONG_FRAME, "pong"
    _RECEIVED["unknown"].inc()
    shown = repr(kind) if isinstance(kind, str) and len(kind) <= _SHOWN_TYPE_CHARS else "this type"
    accepted = '"ping" and "auth" are accepted'
    return error_frame("unknown_type", f"unknown message type {shown}; {accepted}"), "error"


# Verifies a fresh access token sent in-band; raises ``ApiError`` when it is refused.
Reauthenticate = Callable[[str], Awaitable[Principal]]


class SessionClock:
    """Closes a socket (4002) when the access token it authenticated with expires, unless an
    in-band ``{"type": "auth", "access_token": ...}`` moved the deadline first."""

    def __init__(self, conn: Connection, hub: Hub) -> None:
        self._conn = conn
        self._hub = hub
        self._timer: asyncio.TimerHandle | None = None

    def expire_at(self, valid_until: float | None) -> None:
        """``valid_until``: epoch seconds; None never expires (a test token without one)."""
        self.cancel()
        if valid_until is not None:
            delay = max(0.0, valid_until - time.time())
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        if self._conn.close_now(TOKEN_EXPIRED_CLOSE_CODE):
            self._hub.unregister(self._conn)


async def reauthenticate_in_band(
    message: dict[str, Any],
    *,
    conn: Connection,
    clock: SessionClock,
    reauthenticate: Reauthenticate | None,
    valid_until: Callable[[Principal], float],
) -> tuple[str, FrameType]:
    """Swap the socket's token for a fresh one of the same user: the deadline moves to the
    new token's, and the socket now belongs to the new token's session."""
    _RECEIVED["auth"].inc()
    token = message.get("access_token")
    if reauthenticate is None or not isinstance(token, str) or not token:
        return error_frame("invalid_token", '"auth" needs an "access_token"'), "error"
    try:
        principal = await reauthenticate(token)
    except ApiError as exc:
        return error_frame("invalid_token", exc.message), "error"
    if canonical_user_id(principal.user_id) != conn.user_id:
        return error_frame("invalid_token", "the token is another user's"), "error"
    if conn.closing:  # ended (or expired) while the token was checked
        return error_frame("invalid_token", "this socket is closing"), "error"
    conn.session_id = principal.session_id
    conn.key_id = principal.key_id
    deadline = valid_until(principal)
    clock.expire_at(deadline)
    return auth_ok_frame(int(deadline)), "auth.ok"


MESSAGE_TOO_BIG = 1009


def _rate_limited_frame(retry_after_ms: int) -> str:
    reason = "too many messages; excess messages are dropped"
    return error_frame("rate_limited", reason, retry_after_ms=retry_after_ms)


async def run_session(  # noqa: PLR0913  # the socket, then keyword-only parts of the session
    websocket: WebSocket,
    *,
    user_id: str,
    hub: Hub,
    presence: Presence,
    max_message_bytes: int,
    limits: MessageLimits | None = None,
    principal: Principal | None = None,
    valid_until: Callable[[Principal], float] | None = None,
    reauthenticate: Reauthenticate | None = None,
) -> None:
    """Serve one accepted socket until the client leaves (or is closed as too slow, for a
    message over ``max_message_bytes`` — uvicorn bounds frames too, this bounds any server —
    for flooding: see ``agora.ratelimit.websocket`` — or when ``principal``'s session ends or
    its token expires, ``valid_until(principal)``, without an in-band re-authentication)."""
    conn = Connection(
        user_id,
        websocket,
        session_id=principal.session_id if principal else None,
        key_id=principal.key_id if principal else None,
    )
    limiter = limits.for_connection() if limits is not None else None
    hub.register(conn)
    sender = asyncio.create_task(conn.run_sender())
    deadline = valid_until or (lambda p: float(p.expires_at))
    clock = SessionClock(conn, hub)
    if principal is not None:
        clock.expire_at(deadline(principal))
    # Each message is its own small trace, linked to the connect span (a socket may live for
    # hours: one trace per connection would never end).
    connect = tracing.current_span_context()
    links = [Link(connect)] if connect.is_valid else None
    try:
        await presence.connected(user_id, conn.id)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes") or b""
            size = len(raw.encode()) if isinstance(raw, str) else len(raw)
            if size > max_message_bytes:
                RATELIMIT_REJECTIONS.labels("ws_message_size").inc()
                await websocket.close(code=MESSAGE_TOO_BIG)
                return
            if limiter is not None and (verdict := limiter.check()) is not Verdict.ALLOW:
                _WS_REJECTIONS.inc()
                if verdict is Verdict.CLOSE:
                    hub.unregister(conn)
                    sender.cancel()
                    await websocket.close(POLICY_VIOLATION, "message rate limit exceeded")
                    return
                if verdict is Verdict.NOTIFY:
                    hub.reply(conn, _rate_limited_frame(limiter.retry_after_ms), "error")
                continue  # dropped
            with tracing.span("WS message", kind=SpanKind.SERVER, context=Context(), links=links):
                decoded = decode(message.get("text"), message.get("bytes"))
                if isinstance(decoded, tuple):
                    frame, kind = decoded
                elif decoded.get("type") == "auth":
                    frame, kind = await reauthenticate_in_band(
                        decoded,
                        conn=conn,
                        clock=clock,
                        reauthenticate=reauthenticate,
                        valid_until=deadline,
                    )
                else:
                    frame, kind = reply_to(decoded)
                hub.reply(conn, frame, kind)
    finally:
        clock.cancel()
        hub.unregister(conn)
        sender.cancel()
        await presence.disconnected(user_id, conn.id)


class EventDispatcher:
    """Delivers events from the channel to this instance's sockets.

    Notifications need no I/O and are delivered inline. ``post.created`` needs one query
    (which local users follow the author), so it runs in a task, at most ``max_in_flight`` at
    once: a slow database delays posts, never the subscriber or notifications.
    """

    def __init__(self, *, hub: Hub, db: Database, max_in_flight: int = 32) -> None:
        self._hub = hub
        self._db = db
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[int]] = set()

    async def handle(self, raw: bytes) -> None:
        try:
            event = Event.decode(raw)
        except Exception as exc:
            log.warning("ignoring a malformed event", error=repr(exc))
            return
        if event.type == "notification":
            with _delivery_span(event):
                self.deliver_notification(event)
            return
        if event.type == "account.deleted":
            user_id = canonical_user_id(event.recipient_id or "")
            if user_id is not None and self._hub.close_user(user_id, ACCOUNT_DELETED_CLOSE_CODE):
                log.info("closed the sockets of a deleted account", user_id=user_id)
            return
        if event.type == "session.ended":
            self.end_sessions(event)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._traced_delivery(event))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _traced_delivery(self, event: Event) -> int:
        with _delivery_span(event):
            return await self.deliver_post(event)

    def _finished(self, task: asyncio.Task[int]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests, and an orderly shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.drain()

    def end_sessions(self, event: Event) -> int:
        user_id = canonical_user_id(event.recipient_id or "")
        sessions = event.payload.get("session_ids")
        if user_id is None or not isinstance(sessions, list):
            log.warning("session.ended event without a valid recipient_id or session_ids")
            return 0
        closed = self._hub.end_sessions(user_id, (s for s in sessions if isinstance(s, str)))
        if closed:
            log.info("closed the sockets of ended sessions", user_id=user_id, sockets=closed)
        return closed

    def deliver_notification(self, event: Event) -> int:
        recipient = canonical_user_id(event.recipient_id or "")
        if recipient is None:
            log.warning("notification event without a valid recipient_id")
            return 0
        if not self._hub.is_connected(recipient):
            return 0  # the usual case on all instances but one: nothing to encode
        frame = event_frame(event)
        return self._hub.send_to_user(recipient, frame, "notification")

    async def deliver_post(self, event: Event) -> int:
        author = canonical_user_id(event.author_id or "")
        if author is None:
            log.warning("post.created event without a valid author_id")
            return 0
        candidates = [user_id for user_id in self._hub.user_ids() if user_id != author]
        if not candidates:
            return 0
        try:
            async with self._db.connection() as conn:
                followers = await repository.online_followers(
                    conn, author_id=author, candidate_ids=candidates
                )
        except Exception as exc:
            # The post is durable; followers see it in their feed on the next refresh.
            log.warning("post.created not delivered", author_id=author, error=repr(exc))
            return 0
        if not followers:
            return 0
        frame = event_frame(event)
        return self._hub.send_to_users(followers, frame, "post.created")


def _delivery_span(event: Event) -> AbstractContextManager[object]:
    """A CONSUMER span, child of the publishing request's span (its ``traceparent`` is in
    the event's ``meta``): the trace shows the request, the publish and every delivery."""
    if tracing.tracer() is None:
        return nullcontext()
    return tracing.span(
        f"deliver {event.type}",
        kind=SpanKind.CONSUMER,
        context=tracing.extract(event.meta),
        attributes={"messaging.system": "redis", "messaging.operation.type": "process"},
    )
