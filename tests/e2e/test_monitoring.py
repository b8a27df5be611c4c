"""`agora up --replicas 2 --monitoring` with the test config (1 s scrape and evaluation, no
group wait): real faults reach the webhook, timed; every dashboard panel's query returns data.

One running system for the whole module. PostgreSQL is a primary with a streaming replica
(tests/pgcluster.py), so the replica pool and the replication-lag panel have data.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from websockets.sync.client import connect

from agora.devstack.embedded import port_is_free
from tests.e2e.conftest import service_env
from tests.monitoring.checks import (
    DASHBOARD_DIR,
    load_dashboard,
    needs_amtool,
    needs_promtool,
    panel_queries,
    substitute,
)
from tests.pgcluster import PgCluster, needs_pg_tools, new_primary, new_replica, remove

pytestmark = [pytest.mark.e2e, needs_pg_tools, needs_promtool, needs_amtool]

GATEWAY = "http://127.0.0.1:8000"
CONTRACT_PORTS = (8000, 8443, 9901, 8080, 8081, 8082)


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    log: Path
    monitoring: Path
    prometheus: str

    def targets(self, service: str) -> list[int]:
        entries = json.loads((self.monitoring / "targets" / "agora.json").read_text())
        return [
            int(t.rsplit(":", 1)[1])
            for e in entries
            if e["labels"]["service"] == service
            for t in e["targets"]
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def notification(
        self, alertname: str, since: float, receiver: str, **labels: str
    ) -> dict[str, Any] | None:
        """The first firing notification of ``alertname`` with ``labels`` that ``receiver``
        got after ``since`` (the webhook's clock is this host's), or None."""
        path = self.monitoring / "notifications.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            entry = json.loads(line)
            if entry["receiver"] != receiver or entry["received_at"] < since:
                continue
            if entry["payload"]["status"] != "firing":
                continue
            for alert in entry["payload"]["alerts"]:
                got = alert["labels"]
                if got["alertname"] == alertname and all(
                    got.get(k) == v for k, v in labels.items()
                ):
                    return {**entry, "alert": alert}
        return None

    def wait_notified(
        self, alertname: str, since: float, receivers: tuple[str, ...], **labels: str
    ) -> dict[str, float]:
        """Seconds from ``since`` to the notification at each receiver."""
        seconds = {}
        for receiver in receivers:

            def notified(r: str = receiver) -> dict[str, Any] | None:
                return self.notification(alertname, since, r, **labels)

            note = wait_for(
                notified,
                60,
                f"{alertname} {labels} at {receiver}",
                self,
            )
            assert note["alert"]["annotations"]["runbook_url"].endswith(f"#{alertname.lower()}")
            assert note["alert"]["annotations"]["summary"]
            seconds[receiver] = note["received_at"] - since
        return seconds


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if stack.process.poll() is not None:
            raise AssertionError(f"agora up exited before {what}:\n{stack.log.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{stack.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[PgCluster, PgCluster]]:
    primary = new_primary()
    replica = new_replica(primary)
    yield primary, replica
    remove(replica)
    remove(primary)


@pytest.fixture(scope="module")
def primary_url(cluster: tuple[PgCluster, PgCluster]) -> str:
    return cluster[0].url


@pytest.fixture(scope="module")
def stack(
    redis_url: str,
    cluster: tuple[PgCluster, PgCluster],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    busy = [port for port in CONTRACT_PORTS if not port_is_free(port)]
    assert not busy, f"the contract ports {busy} must be free for `agora up`"
    primary, replica = cluster
    workdir = tmp_path_factory.mktemp("monitoring")
    env = service_env(
        primary.url,
        redis_url,
        AGORA_DATABASE_REPLICA_URLS=replica.url,
        AGORA_MONITORING_SCRAPE_INTERVAL_S="1",
        AGORA_MONITORING_GROUP_WAIT_S="0",
        AGORA_DB_POOL_MAX_SIZE="3",
    )
    log = workdir / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agora",
                "up",
                "--replicas",
                "2",
                "--monitoring",
                "--workdir",
                str(workdir / "state"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Stack(process, log, workdir / "state" / "monitoring", "")
    try:
        text = wait_for(
            lambda: "Monitoring:" in log.read_text(errors="replace") and log.read_text(),
            240,
            "agora up --monitoring",
            running,
        )
        running.prometheus = text.split("Prometheus ", 1)[1].split()[0]
        healthy = 'count(up{job=~"agora|gateway|node|postgres"} == 1)'
        wait_for(
            lambda: (r := running.query(healthy)) and r[0]["value"][1] == "9",
            60,
            "all 9 targets up",
            running,
        )
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _traffic() -> None:
    """A short burst through the gateway: accounts, follows, posts, likes, feeds,
    notifications, profiles, presence and a WebSocket."""
    with httpx.Client(base_url=GATEWAY, timeout=10) as client:
        tokens, ids = [], []
        for _ in range(2):
            name = f"m{uuid.uuid4().hex[:10]}"
            created = client.post(
                "/api/v1/auth/register",
                json={"username": name, "email": f"{name}@example.com", "password": "pw-" + name},
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
            login = client.post(
                "/api/v1/auth/login", json={"username": name, "password": "pw-" + name}
            )
            tokens.append(login.json()["access_token"])
        author, reader = ({"Authorization": f"Bearer {t}"} for t in tokens)
        with connect(f"ws://127.0.0.1:8000/ws?access_token={tokens[1]}", open_timeout=10):
            assert client.put(f"/api/v1/posts/follows/{ids[0]}", headers=reader).status_code < 300
            post = client.post("/api/v1/posts", json={"content": "hello"}, headers=author).json()
            client.put(f"/api/v1/posts/{post['id']}/like", headers=reader)
            for _ in range(20):
                assert client.get("/api/v1/posts/feed", headers=reader).status_code == 200
                client.get(f"/api/v1/posts/{post['id']}", headers=reader)
                client.get(f"/api/v1/auth/users/{ids[0]}", headers=reader)
                client.get("/api/v1/posts/notifications", headers=author)
                client.get(f"/api/v1/realtime/presence/{ids[1]}", headers=author)
            time.sleep(3)  # a few scrapes while the socket is open


def test_every_dashboard_panel_query_returns_data(stack: Stack) -> None:
    _traffic()
    empty = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for title, expr in panel_queries(load_dashboard(path)):
            query = substitute(expr, rate_interval="1m", time_range="5m")
            if not stack.query(query):
                empty.append(f"{path.name}: {title}: {query}")
    assert empty == [], "panels without data"


def _report(what: str, seconds: dict[str, float]) -> None:
    print(f"\n{what}: " + ", ".join(f"{r} {s:.1f} s" for r, s in seconds.items()))  # noqa: T201  # the measured figure is this test's report (pytest -s)


def test_sigkill_of_an_instance_reaches_the_webhook_as_service_down(stack: Stack) -> None:
    port = stack.targets("posts")[1]
    victim = next(
        p
        for p in psutil.Process(stack.process.pid).children(recursive=True)
        if "serve" in p.cmdline() and str(port) in p.cmdline()
    )
    killed_at = time.time()
    victim.send_signal(signal.SIGKILL)
    seconds = stack.wait_notified(
        "AgoraServiceDown",
        killed_at,
        ("slack", "pagerduty-oncall"),
        severity="P1",
        service="posts",
        instance=f"127.0.0.1:{port}",
    )
    _report("SIGKILL -> AgoraServiceDown notification", seconds)


def test_an_exhausted_pool_reaches_the_webhook_as_pool_exhausted(
    stack: Stack, primary_url: str
) -> None:
    """A lock on users holds every registration of one auth instance: its 3 connections
    stay checked out and further requests queue for one."""
    port = stack.targets("auth")[1]
    stop = threading.Event()

    def register() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            while not stop.is_set():
                name = f"p{uuid.uuid4().hex[:10]}"
                body = {"username": name, "email": f"{name}@example.com", "password": "pw-" + name}
                with contextlib.suppress(httpx.HTTPError):
                    client.post("/api/v1/auth/register", json=body)

    with psycopg.connect(primary_url, autocommit=False) as lock:
        lock.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        started_at = time.time()
        workers = [threading.Thread(target=register, daemon=True) for _ in range(8)]
        for worker in workers:
            worker.start()
        try:
            seconds = stack.wait_notified(
                "AgoraDBPoolExhausted",
                started_at,
                ("slack", "pagerduty-oncall"),
                severity="P1",
                service="auth",
                instance=f"127.0.0.1:{port}",
                pool="primary",
            )
        finally:
            stop.set()
            lock.rollback()
        for worker in workers:
            worker.join(timeout=20)
    _report("pool exhausted -> AgoraDBPoolExhausted notification", seconds)
