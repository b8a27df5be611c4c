"""uvicorn's httptools protocol with a deadline and a size cap on each request's headers.

uvicorn (0.54, httptools) arms no timer before a connection's first request headers and counts
no header bytes (``h11_max_incomplete_event_size`` is read only by its h11 protocol): a client
that connects and sends nothing, or trickles its headers a byte at a time, or sends an endless
header block, holds the connection (and its memory) for ever. This subclass adds:

- a header deadline, armed when the connection is made and when the next request's first
  byte arrives, cancelled when its headers are complete; on expiry the connection is closed.
  The idle time between requests stays uvicorn's keep-alive timeout (above the gateway's idle
  timeout on purpose, docs/operations.md), so it is not re-armed at the end of a response;
- a cap on the bytes received before the headers are complete, answered 431 and closed.

It relies on these uvicorn internals, pinned by tests/unit/test_http_protocol.py: the
``connection_made``/``data_received``/``connection_lost`` protocol methods; the parser
callbacks ``on_message_begin``/``on_url``/``on_header``/``on_headers_complete``/``on_body``/
``on_message_complete`` and ``handle_websocket_upgrade``, all called synchronously from
``parser.feed_data`` inside ``data_received`` (``on_headers_complete`` starts the request);
and ``self.transport``/``self.loop``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agora.errors import error_body


class HeaderDeadlineProtocol(HttpToolsProtocol):
    # Set by header_deadline_protocol(): uvicorn builds the protocol itself, with its own
    # arguments only, so the limits travel as class attributes of a configured subclass.
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._received = 0  # raw bytes of this request while its headers are incomplete
        self._parsed = 0  # its request target, header names and values
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._awaiting_headers or self.transport.is_closing():
            return
        # Headers still incomplete after this chunk (httptools buffers a partial header
        # itself, so the callbacks' count alone would miss an endless one); what is buffered
        # past the cap is at most one read (the event loop reads 256 KiB at most).
        self._received += len(data)
        if self._received > self.max_header_bytes:
            self._refuse_header_block()

    # Parser callbacks (called from parser.feed_data, inside data_received)
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._received = self._parsed = 0
        if self._header_timer is None:  # a fresh connection's deadline runs from the connect
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed += len(name) + len(value)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_timer()
        if self._refused:
            return
        if self._parsed > self.max_header_bytes:  # a whole block that arrived in one read
            self._refuse_header_block()
            return
        super().on_headers_complete()

    # After a refusal the parser may still deliver the rest of the chunk it was fed; there is
    # no request cycle to give it to.
    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:  # an oversized upgrade request was answered 431 already
            super().handle_websocket_upgrade()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        # No answer: the client may not have sent a request line to answer.
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_header_block(self) -> None:
        self._refused = True
        self._cancel_header_timer()
        body = error_body(
            "headers_too_large", f"request headers may be at most {self.max_header_bytes} bytes"
        )
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()


def header_deadline_protocol(
    *, header_timeout_s: float, max_header_bytes: int
) -> type[HeaderDeadlineProtocol]:
    """The protocol class to pass as ``uvicorn.Config(http=...)``."""
    return type(
        "ConfiguredHeaderDeadlineProtocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes},
    )
