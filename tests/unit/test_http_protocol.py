"""What agora.http_protocol relies on in uvicorn and httptools: an upgrade that renames or
reshapes these would silently disable the header deadline and cap (the e2e tests in
tests/e2e/test_slow_clients.py show the effect; these say which internal moved)."""

from __future__ import annotations

import inspect

import httptools
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agora.http_protocol import HeaderDeadlineProtocol, header_deadline_protocol

OVERRIDDEN = [
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "handle_websocket_upgrade",
]


@pytest.mark.parametrize("name", OVERRIDDEN)
def test_every_overridden_method_exists_in_uvicorn_with_the_same_signature(name: str) -> None:
    ours = inspect.signature(getattr(HeaderDeadlineProtocol, name))
    theirs = inspect.signature(getattr(HttpToolsProtocol, name))
    assert list(ours.parameters) == list(theirs.parameters)


def test_uvicorn_sets_the_transport_and_loop_the_subclass_uses() -> None:
    source = inspect.getsource(HttpToolsProtocol)
    assert "self.loop = " in source
    assert "self.transport = transport" in source


async def _app(_scope: Scope, _receive: Receive, _send: Send) -> None:
    pass


def test_uvicorn_config_takes_the_configured_class_as_its_http_protocol() -> None:
    protocol = header_deadline_protocol(header_timeout_s=2.5, max_header_bytes=2048)
    config = uvicorn.Config(_app, http=protocol, log_config=None)
    config.load()
    assert config.http_protocol_class is protocol
    assert issubclass(protocol, HttpToolsProtocol)
    assert (protocol.header_timeout_s, protocol.max_header_bytes) == (2.5, 2048)


class _Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_message_begin(self) -> None:
        self.events.append("begin")

    def on_url(self, url: bytes) -> None:
        self.events.append(f"url:{url.decode()}")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.events.append(f"header:{name.decode()}={value.decode()}")

    def on_headers_complete(self) -> None:
        self.events.append("headers_complete")


def test_httptools_calls_back_synchronously_and_buffers_a_partial_header() -> None:
    recorder = _Recorder()
    parser = httptools.HttpRequestParser(recorder)
    parser.feed_data(b"GET /x HTTP/1.1\r\nHost: t\r\nX-Slow: aaa")
    # The partial header is not delivered: the raw byte count is what bounds an endless one.
    assert recorder.events == ["begin", "url:/x", "header:Host=t"]
    parser.feed_data(b"aa\r\n\r\n")
    # Delivered before feed_data returns, so data_received sees the headers complete.
    assert recorder.events[-2:] == ["header:X-Slow=aaaaa", "headers_complete"]
