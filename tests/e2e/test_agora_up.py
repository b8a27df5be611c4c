"""`agora up` as `make run` runs it: nothing configured, so embedded PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.sync.client import connect

from agora.devstack.embedded import port_is_free
from tests.conftest import FAST_HASH

pytestmark = pytest.mark.e2e

CONTRACT_PORTS = (8080, 8081, 8082)
GATEWAY_PORTS = (8000, 8443, 9901)


def _wait_for(
    predicate: object, timeout: float, what: str, log: Path, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        if process.poll() is not None:  # `agora up` gave up: no point waiting out the timeout
            raise AssertionError(
                f"agora up exited ({process.returncode}) before {what}:\n"
                + log.read_text(errors="replace")
            )
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')}")


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# Embedded PostgreSQL's first initdb, nine services and Envoy: slower than the default timeout
# on a loaded machine, and the waits below name what was late.
@pytest.mark.timeout(420)
def test_up_runs_everything_on_embedded_servers_and_stops_cleanly(tmp_path: Path) -> None:
    busy = [port for port in CONTRACT_PORTS + GATEWAY_PORTS if not port_is_free(port)]
    assert not busy, f"the contract ports {busy} must be free for `agora up`"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env.update({f"AGORA_{k.upper()}": str(v) for k, v in FAST_HASH.items()})
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agora",
                "up",
                "--replicas",
                "3",
                "--workdir",
                str(tmp_path / "state"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(lambda: b"Agora is up" in log.read_bytes(), 120, "agora up", log, process)
        text = log.read_text()
        assert "PostgreSQL (embedded)" in text
        assert "Redis (embedded)" in text
        ports = {int(p) for p in re.findall(r"starting \w+#\d on port (\d+)", text)}
        assert len(ports) == 9
        assert set(CONTRACT_PORTS) <= ports
        assert all(_ready(port) for port in ports)
        ids = {
            httpx.get(f"http://127.0.0.1:{port}/healthz/live").json()["instance_id"]
            for port in ports
        }
        assert len(ids) == 9  # one id per instance, for probes, logs and presence

        # Everything through the gateway, as a client would.
        auth = posts = gateway = "http://127.0.0.1:8000"
        credentials = {"username": "up_user", "password": "a-long-enough-password"}
        registered = httpx.post(
            f"{auth}/api/v1/auth/register", json={**credentials, "email": "up@example.com"}
        )
        assert registered.status_code == 201, registered.text
        token = httpx.post(f"{auth}/api/v1/auth/login", json=credentials).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{posts}/api/v1/posts", json={"content": "hello from up"}, headers=headers
        )
        assert created.status_code == 201, created.text
        feed = httpx.get(f"{posts}/api/v1/posts/feed", headers=headers).json()
        assert [item["content"] for item in feed["items"]] == ["hello from up"]

        with connect("ws://127.0.0.1:8000/ws", additional_headers=headers) as ws:
            ws.send('{"type": "ping"}')
            assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
            user_id = registered.json()["id"]
            presence = httpx.get(f"{gateway}/api/v1/realtime/presence/{user_id}", headers=headers)
            assert presence.json()["online"] is True
        assert httpx.get(f"{gateway}/metrics").status_code == 404
        trust = ssl.create_default_context(cafile=str(tmp_path / "state" / "tls" / "gateway.crt"))
        secure = httpx.get(
            "https://127.0.0.1:8443/api/v1/posts/feed", headers=headers, verify=trust
        )
        assert secure.status_code == 200, secure.text

        # A service that dies is restarted, and the restart is announced.
        auth_pid = _pid_listening_on(8080)
        os.kill(auth_pid, signal.SIGKILL)
        _wait_for(
            lambda: "auth#1 (port 8080) exited" in log.read_text(), 30, "the report", log, process
        )
        _wait_for(lambda: _ready(8080), 60, "auth#1 to come back", log, process)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=90)
    assert code == 0, log.read_text(errors="replace")
    assert "all services stopped" in log.read_text()
    assert all(port_is_free(port) for port in ports | set(GATEWAY_PORTS))


def _pid_listening_on(port: int) -> int:
    for conn in psutil.net_connections(kind="tcp"):
        if (
            conn.status == psutil.CONN_LISTEN
            and conn.laddr
            and conn.laddr.port == port
            and conn.pid
        ):
            return int(conn.pid)
    raise AssertionError(f"nothing listens on {port}")
