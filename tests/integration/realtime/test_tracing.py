"""WebSocket spans: the handshake continues the caller's trace; each client message is a trace
of its own, linked to the handshake (a socket may live for hours)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agora.config import Settings
from agora.observability import tracing
from agora.services.realtime.app import create_app
from tests.conftest import TokenFactory
from tests.integration.realtime.conftest import Serve, open_socket, receive
from tests.otlp_receiver import OtlpReceiver


async def test_handshake_and_messages_are_spans(
    settings: Settings,
    tokens: TokenFactory,
    serve: Serve,
    make_user: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    with OtlpReceiver() as receiver:
        traced = settings.model_copy(
            update={"otlp_endpoint": receiver.endpoint, "trace_sample_ratio": 1.0}
        )
        server = await serve(create_app(traced, key_resolver=tokens.resolver))
        assert tracing.tracer() is not None
        async with open_socket(server, tokens(make_user())) as ws:
            await ws.send('{"type": "ping"}')
            assert (await receive(ws))["type"] == "pong"
        spans = receiver.wait_for(lambda got: {"WS /ws", "WS message"} <= {s.name for s in got})
    handshake = next(s for s in spans if s.name == "WS /ws")
    message = next(s for s in spans if s.name == "WS message")
    assert handshake.kind == message.kind == "SERVER"
    assert handshake.attributes["http.route"] == "/ws"
    assert handshake.attributes["http.response.status_code"] == 101
    assert message.trace_id != handshake.trace_id
    assert message.links == [(handshake.trace_id, handshake.span_id)]
    # Presence is written to Redis when the socket opens: a Redis span under the handshake.
    assert any(s.kind == "CLIENT" and s.attributes.get("db.system") == "redis" for s in spans), [
        s.name for s in spans
    ]
