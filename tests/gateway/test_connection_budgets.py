"""WebSockets and HTTP to realtime have separate connection budgets at the gateway: sockets
that fill theirs cannot starve HTTP, and an upgrade beyond it is refused at once, not left
waiting. Before, both shared realtime's one cluster (1,024 connections): 1,024 sockets held
every connection, further upgrades hung and HTTP to /api/v1/realtime/… got no answer."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from agora.config import ServiceName
from tests.gateway.conftest import (
    Stack,
    bearer,
    gateway_settings,
    register_and_login,
    start_gateway,
    unique,
    wait_healthy,
)

pytestmark = pytest.mark.e2e

BUDGET = 6


def open_and_close(ws_url: str, token: str) -> None:
    with connect(f"{ws_url}/ws", additional_headers=bearer(token), open_timeout=3):
        pass


def test_websockets_that_fill_their_budget_leave_http_to_realtime_answered(
    stack: Stack, tmp_path: Path
) -> None:
    ports: dict[ServiceName, list[int]] = {
        name: [p.port for p in stack.service(name)] for name in ("auth", "posts", "realtime")
    }
    gateway = start_gateway(gateway_settings(gateway_max_websockets=BUDGET), ports, tmp_path)
    sockets = ExitStack()
    try:
        wait_healthy(gateway, "realtime_ws", 1)
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            users = [register_and_login(client, unique("budget")) for _ in range(BUDGET)]
            for _, token in users:
                sockets.enter_context(
                    connect(
                        f"{gateway.ws_url}/ws", additional_headers=bearer(token), open_timeout=10
                    )
                )
            # One upgrade may wait for a connection (an eighth of the budget, at least one)...
            waiting = ThreadPoolExecutor(1)
            waiter = waiting.submit(open_and_close, gateway.ws_url, users[1][1])
            time.sleep(0.5)
            started = time.monotonic()
            with pytest.raises(InvalidStatus) as refused:  # ...the next is refused at once
                open_and_close(gateway.ws_url, users[0][1])
            refused_in = time.monotonic() - started
            assert refused.value.response.status_code == 503
            assert refused_in < 5  # refused, not queued behind the open sockets

            user_id, token = users[0]
            started = time.monotonic()
            presence = client.get(f"/api/v1/realtime/presence/{user_id}", headers=bearer(token))
            answered_in = time.monotonic() - started
            assert presence.status_code == 200, presence.text
            assert presence.json()["online"] is True
            with pytest.raises(TimeoutError):
                waiter.result(timeout=10)
            waiting.shutdown()
        overflow = gateway.stats()["cluster.realtime_ws.upstream_rq_pending_overflow"]
        print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
            f"\n{BUDGET} sockets open: extra upgrade refused in {refused_in:.3f}s, "
            f"presence answered in {answered_in:.3f}s, ws overflow {overflow}"
        )
        assert overflow >= 1
    finally:
        sockets.close()
        gateway.stop()


def test_a_slow_body_is_cut_off_at_the_gateway_and_websockets_outlive_the_limit(
    stack: Stack, tmp_path: Path
) -> None:
    ports: dict[ServiceName, list[int]] = {
        name: [p.port for p in stack.service(name)] for name in ("auth", "posts", "realtime")
    }
    gateway = start_gateway(gateway_settings(gateway_request_timeout_s=2), ports, tmp_path)
    try:
        wait_healthy(gateway, "auth", 1)
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            _, token = register_and_login(client, unique("slow"))
        with ExitStack() as held:
            ws = held.enter_context(
                connect(f"{gateway.ws_url}/ws", additional_headers=bearer(token), open_timeout=10)
            )
            with socket.create_connection(
                ("127.0.0.1", gateway.settings.gateway_http_port)
            ) as sock:
                sock.sendall(
                    b"POST /api/v1/auth/login HTTP/1.1\r\nHost: agora\r\n"
                    b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"user'
                )
                started = time.monotonic()
                sock.settimeout(20)
                answer = b""
                while b"\r\n\r\n" not in answer and (chunk := sock.recv(4096)):
                    answer += chunk  # one byte more every few seconds would change nothing
                cut_off_in = time.monotonic() - started
            status = answer.split(b"\r\n", 1)[0]
            print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
                f"\nslow body: {status.decode()} after {cut_off_in:.1f}s"
            )
            assert status == b"HTTP/1.1 408 Request Timeout"
            assert 1.5 < cut_off_in < 6
            # The WebSocket has lived past the request limit and still works.
            ws.send('{"type": "ping"}')
            assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
    finally:
        gateway.stop()
