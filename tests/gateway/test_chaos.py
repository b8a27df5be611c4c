"""The gateway's retries and its fault-injection switch, on a real Envoy.

Retries: an idempotent request that meets a 5xx is retried on another instance; a POST is
not. Faults: `agora chaos` switches delay/abort per route through the admin runtime; every
injected fault is counted and flagged in the access log; production renders no fault filter
unless AGORA_GATEWAY_FAULT_INJECTION is set, and the command refuses there.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from agora.cli import app
from agora.config import ConfigError, ServiceName
from agora.gateway.certs import ensure_dev_certificate
from agora.gateway.chaos import Chaos, Fault, check_allowed, routes_for
from agora.gateway.config import local_topology, render_config
from tests.conftest import production_settings
from tests.gateway.conftest import (
    Gateway,
    Recorder,
    gateway_settings,
    recorder_ports,
    start_gateway,
    wait_healthy,
)

pytestmark = pytest.mark.e2e


class Failing:
    """An instance that is ready but answers every API request with 500 (and counts them)."""

    def __init__(self) -> None:
        failing = self
        self.hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                if self.path == "/readyz":
                    self.send_response(200)
                else:
                    failing.hits.append(self.command)
                    self.send_response(500)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(recorder: Recorder, tmp_path: Path) -> Iterator[Gateway]:
    running = start_gateway(gateway_settings(), recorder_ports(recorder), tmp_path / "gw")
    yield running
    running.stop()


def _routes(text: str) -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(text)
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    return {r["name"]: r for r in routes}


def _filters(text: str, index: int = 0) -> list[str]:
    config = yaml.safe_load(text)
    listener = config["static_resources"]["listeners"][index]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"] for f in manager["http_filters"]]


def test_idempotent_routes_retry_5xx_on_another_host_and_writes_do_not(tmp_path: Path) -> None:
    tls = ensure_dev_certificate(tmp_path)
    text = render_config(
        gateway_settings(), local_topology({"auth": [1], "posts": [2], "realtime": [3]}), tls
    )
    routes = _routes(text)
    read, write = (
        routes["posts"]["route"]["retry_policy"],
        routes["posts-write"]["route"]["retry_policy"],
    )
    assert "5xx" in read["retry_on"].split(",")
    assert "reset" in read["retry_on"].split(",")
    assert "5xx" not in write["retry_on"]
    assert "reset," not in write["retry_on"] + ","
    for policy in (read, write):
        assert policy["retry_host_predicate"][0]["name"].endswith("previous_hosts")
    cluster = yaml.safe_load(text)["static_resources"]["clusters"][0]
    assert cluster["outlier_detection"]["consecutive_5xx"] == 5


def test_a_get_that_meets_a_5xx_is_answered_by_another_instance(
    recorder: Recorder, tmp_path: Path
) -> None:
    failing = Failing()
    try:
        ports: dict[ServiceName, list[int]] = {
            "auth": [failing.port, recorder.port],
            "posts": [recorder.port],
            "realtime": [recorder.port],
        }
        gateway = start_gateway(gateway_settings(), ports, tmp_path / "gw")
        try:
            wait_healthy(gateway, "auth", 2)
            with httpx.Client(base_url=gateway.url, timeout=5) as client:
                # Writes first: five 5xx in a row eject the failing instance (outlier
                # detection), and the reads must still meet it.
                # Until one lands on the failing instance (each worker balances on its own):
                # one 5xx there, far from the five in a row that would eject it.
                writes: list[int] = []
                while len(writes) < 20 and 500 not in writes:
                    writes.append(client.post("/api/v1/auth/login", json={}).status_code)
                reads = [client.get(f"/api/v1/auth/users/{i}").status_code for i in range(20)]
        finally:
            gateway.stop()
    finally:
        failing.close()
    assert reads == [200] * 20, "every GET answered, the failing instance's 500s retried"
    assert "GET" in failing.hits, "the failing instance was tried"
    assert 500 in writes, "a POST is never repeated: its 500 reaches the client"


def test_development_renders_the_fault_filter_and_production_only_when_enabled(
    tmp_path: Path,
) -> None:
    tls = ensure_dev_certificate(tmp_path)
    topology = local_topology({"auth": [1], "posts": [2], "realtime": [3]})
    development = render_config(gateway_settings(), topology, tls)
    assert "envoy.filters.http.fault" in _filters(development)
    fault = _routes(development)["posts"]["typed_per_filter_config"]["envoy.filters.http.fault"]
    assert fault["abort_percent_runtime"] == "agora.fault.posts.abort_percent"
    assert fault["abort"]["percentage"]["numerator"] == 0, "off until switched on"
    production = render_config(production_settings(), topology, tls)
    assert "envoy.filters.http.fault" not in production
    enabled = render_config(production_settings(gateway_fault_injection=True), topology, tls)
    assert "envoy.filters.http.fault" in _filters(enabled, 1)


def test_abort_and_delay_are_switched_per_route_counted_and_logged(gateway: Gateway) -> None:
    with (
        Chaos(gateway.admin_url) as chaos,
        httpx.Client(base_url=gateway.url, timeout=10) as client,
    ):
        assert client.get("/api/v1/auth/users/1").status_code == 200
        chaos.set(Fault("auth", "abort", 100, 503))
        aborted = client.get("/api/v1/auth/users/1")
        assert aborted.status_code == 503
        assert aborted.json()["error"]["code"] == "unavailable"
        assert client.post("/api/v1/auth/login", json={}).status_code == 200, "others untouched"
        entry = gateway.access_entry(aborted.headers["x-request-id"])
        assert "FI" in entry["gateway.response_flags"]

        chaos.set(Fault("auth-write", "delay", 100, 300))
        # Envoy's runtime reaches each worker thread's snapshot shortly after the change: a
        # request on a worker that has not seen it yet is not delayed, so ask a few times.
        for _ in range(20):
            started = time.monotonic()
            delayed = client.post("/api/v1/auth/login", json={})
            took = time.monotonic() - started
            if took >= 0.3:
                break
            time.sleep(0.1)
        assert delayed.status_code == 200
        assert took >= 0.3
        assert (
            "DI" in gateway.access_entry(delayed.headers["x-request-id"])["gateway.response_flags"]
        )

        assert chaos.active()["agora.fault.auth.abort_percent"] == "100"
        counts = chaos.injected()
        # at least the faults seen above (a worker with a stale snapshot may add to them)
        assert counts["http.http.fault.aborts_injected"] >= 1
        assert counts["http.http.fault.delays_injected"] >= 1
        chaos.clear(["auth", "auth-write"])
        answers = []
        for _ in range(20):  # until every worker's snapshot has the switch off
            answers.append(client.get("/api/v1/auth/users/1").status_code)
            if answers[-3:] == [200, 200, 200]:
                break
            time.sleep(0.1)
        assert answers[-3:] == [200, 200, 200]
        metrics = httpx.get(f"{gateway.admin_url}/stats/prometheus", timeout=5).text
        exported = re.search(
            r'^envoy_http_fault_aborts_injected\{envoy_http_conn_manager_prefix="http"\} (\d+)',
            metrics,
            re.MULTILINE,
        )
        assert exported is not None
        assert int(exported.group(1)) >= 1


def test_the_chaos_command_switches_faults_and_refuses_bad_input(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    admin = ["--admin", gateway.admin_url]
    on = runner.invoke(app, ["chaos", "abort", "--percent", "100", "--route", "auth", *admin])
    assert on.exit_code == 0, on.output
    assert httpx.get(f"{gateway.url}/api/v1/auth/users/1", timeout=5).status_code == 503
    status = runner.invoke(app, ["chaos", "status", *admin])
    assert "agora.fault.auth.abort_percent = 100" in status.output
    off = runner.invoke(app, ["chaos", "off", *admin])
    assert off.exit_code == 0, off.output
    assert httpx.get(f"{gateway.url}/api/v1/auth/users/1", timeout=5).status_code == 200

    for argv, message in [
        (["abort", "--percent", "150"], "--percent 150"),
        (["delay", "--percent", "10", "--ms", "0"], "--ms 0"),
        (["abort", "--percent", "10", "--status", "42"], "--status 42"),
        (["off", "--route", "nowhere"], "unknown route nowhere"),
    ]:
        refused = runner.invoke(app, ["chaos", *argv, *admin])
        assert refused.exit_code == 2, refused.output
        assert message in refused.output, refused.output
    unreachable = runner.invoke(app, ["chaos", "off", "--admin", "http://127.0.0.1:9"])
    assert unreachable.exit_code == 2
    assert "not reachable" in unreachable.output

    monkeypatch.setenv("AGORA_ENV", "production")
    refused = runner.invoke(app, ["chaos", "off", *admin])
    assert refused.exit_code == 2


def test_production_refuses_unless_enabled() -> None:
    with pytest.raises(ConfigError, match="AGORA_GATEWAY_FAULT_INJECTION=true"):
        check_allowed(production_settings())
    check_allowed(production_settings(gateway_fault_injection=True))
    assert routes_for(["all"])[0] == "auth"
