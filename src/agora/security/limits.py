"""Request limits, before any route sees a request (pure ASGI): body size, JSON nesting depth,
and a deadline for the whole request.

- Body size: a declared ``Content-Length`` over the limit is refused at once (413) without
  reading a byte; a chunked body is counted as it arrives and refused when it passes the limit.
- JSON depth: a deeply nested document (``[[[[...]]]]``) costs the parser recursion and can
  exhaust Python's stack (a 500); it is refused with 422 before anything parses it. The check
  costs two ``bytes.count`` calls (C speed) for every body; only a body with more brackets than
  the limit is scanned further.
- Body deadline: a body not received within ``body_timeout_s`` of the headers is answered 408
  ``request_timeout`` (as the gateway answers it) and the connection closed, so a client that
  trickles its body cannot hold a connection; the headers' own deadline is the server's
  (agora.http_protocol).
- Deadline: a request still running after ``timeout_s`` is cancelled and answered 504, so a
  stuck dependency cannot pin a connection (and its pooled resources) forever.

WebSockets are not touched here: their frame size is bounded by the server (``ws_max_size``)
and by the realtime service itself.
"""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.errors import send_error

# The "unrolled loop" form: runs of plain characters are consumed in one step, so a 64 KiB
# string costs microseconds, not a regex step per character.
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_too_deep(body: bytes, limit: int) -> bool:
    """True when ``body`` nests arrays/objects more than ``limit`` levels deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot nest deeper than it has openers
    depth = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b"", body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def is_json_media_type(content_type: bytes) -> bool:
    """What FastAPI parses as JSON (``application/json``, ``application/*+json``), compared
    case-insensitively and without parameters: media types are case-insensitive (RFC 9110)."""
    media_type = content_type.partition(b";")[0].strip().lower()
    main_type, _, subtype = media_type.partition(b"/")
    return main_type == b"application" and (subtype == b"json" or subtype.endswith(b"+json"))


class _BodyTooLarge(Exception):
    pass


# The rest of the body is never read, so the connection cannot be reused.
_UNREAD_BODY = frozenset({HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.REQUEST_TIMEOUT})


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    headers = ((b"connection", b"close"),) if status in _UNREAD_BODY else ()
    await send_error(send, status, code, message, headers=headers)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class RequestLimitsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_json_depth: int,
        timeout_s: float,
        body_timeout_s: float,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.timeout_s = timeout_s
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(send)
            return
        if declared is not None or _header(scope, b"transfer-encoding") is not None:
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    body, more = await self._read_body(receive)
            except _BodyTooLarge:
                await self._too_large(send)
                return
            except TimeoutError:  # only ours: nothing else runs inside the read
                await _send_error(
                    send,
                    408,
                    "request_timeout",
                    f"the request body was not received within {self.body_timeout_s:g}s",
                )
                return
            content_type = _header(scope, b"content-type") or b""
            if is_json_media_type(content_type) and json_too_deep(body, self.max_json_depth):
                await _send_error(
                    send,
                    422,
                    "json_too_deep",
                    f"JSON may nest at most {self.max_json_depth} levels",
                )
                return
            receive = _replay(body, more, receive)
        await self._call_with_deadline(scope, receive, send)

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False  # the client left; the app sees an empty body
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True

    async def _call_with_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline:
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            # A TimeoutError of the app's own (a dependency's) is not ours to answer.
            if started or not deadline.expired():
                raise
            await _send_error(
                send, 504, "timeout", f"the request took longer than {self.timeout_s:g}s"
            )

    async def _too_large(self, send: Send) -> None:
        await _send_error(
            send, 413, "payload_too_large", f"the body may be at most {self.max_body_bytes} bytes"
        )


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A receive that hands the buffered body out once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if complete:
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}
        return await receive()

    return replay
