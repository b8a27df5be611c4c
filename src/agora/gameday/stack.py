"""`agora up --replicas N --monitoring` as the game day runs it: on its own ports (never the
contract ports, so it runs beside another stack), on its own PostgreSQL and Redis Sentinel,
with the production or the fast monitoring configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess  # nosec B404 # starts `agora up` (this package's own CLI)
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from agora.devstack.embedded import free_port, port_is_free
from agora.gameday.infra import Postgres, RedisSentinel

if TYPE_CHECKING:
    import psutil

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """The monitoring clock: production's, or the fast one (1 s scrape, rules on 1/15)."""

    name: str
    scrape_interval_s: float
    group_wait_s: float
    time_scale: float

    def env(self) -> dict[str, str]:
        return {
            "AGORA_MONITORING_SCRAPE_INTERVAL_S": f"{self.scrape_interval_s:g}",
            "AGORA_MONITORING_GROUP_WAIT_S": f"{self.group_wait_s:g}",
            "AGORA_MONITORING_TIME_SCALE": f"{self.time_scale:g}",
        }


PRODUCTION = Timing("production", 15.0, 30.0, 1.0)
FAST = Timing("fast", 1.0, 0.0, 1 / 15)

# The load comes from one address (this host): the limits are lifted so the game day
# measures the faults, not the rate limiter.
LIFTED_LIMITS = {
    "AGORA_RATELIMIT_USER": "1000000/minute",
    "AGORA_RATELIMIT_CREDENTIALS": "1000000/minute",
    "AGORA_RATELIMIT_ANONYMOUS": "1000000/minute",
    "AGORA_RATELIMIT_WS_MESSAGES": "1000000/second",
    "AGORA_GATEWAY_CLIENT_RPS": "100000",
    "AGORA_GATEWAY_TOTAL_RPS": "100000",
}


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _port_base() -> int:
    """Three consecutive free ports for the first instances."""
    for base in range(18080, 19000, 10):
        if all(port_is_free(base + i) for i in range(3)):
            return base
    raise RuntimeError("no three consecutive free ports between 18080 and 19000")


@dataclass
class Stack:
    workdir: Path
    timing: Timing
    replicas: int = 3
    postgres: Postgres = field(init=False)
    redis: RedisSentinel = field(init=False)
    process: subprocess.Popen[bytes] | None = None
    gateway_port: int = 0
    admin_port: int = 0
    prometheus: str = ""
    database_url: str = ""

    def __post_init__(self) -> None:
        self.postgres = Postgres(self.workdir / "postgres")
        self.redis = RedisSentinel(self.workdir / "redis")

    @property
    def log(self) -> Path:
        return self.workdir / "up.log"

    @property
    def monitoring(self) -> Path:
        return self.workdir / "state" / "monitoring"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 300) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = self.postgres.start()
        self.redis.start()
        base = _port_base()
        self.gateway_port, self.admin_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
        env.update(
            {
                "AGORA_DATABASE_URL": self.database_url,
                "AGORA_REDIS_URL": self.redis.url,
                "AGORA_AUTH_JWKS_URL": f"http://127.0.0.1:{base}/api/v1/auth/.well-known/jwks.json",
                "AGORA_GATEWAY_HTTP_PORT": str(self.gateway_port),
                "AGORA_GATEWAY_HTTPS_PORT": str(free_port()),
                "AGORA_GATEWAY_ADMIN_PORT": str(self.admin_port),
                "AGORA_LOG_FORMAT": "json",
                "AGORA_LOG_LEVEL": "WARNING",
                **LIFTED_LIMITS,
                **self.timing.env(),
            }
        )
        argv = [
            sys.executable, "-m", "agora", "up", "--replicas", str(self.replicas),
            "--monitoring", "--workdir", str(self.workdir / "state"), "--port-base", str(base),
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603  # nosec B603 # our own CLI, fixed argv
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        text = wait_for(self._summary, timeout, f"agora up --monitoring (log: {self.log})")
        self.prometheus = text.split("Prometheus ", 1)[1].split()[0]
        expected = 3 * self.replicas + 1
        wait_for(
            lambda: self.value('count(up{job=~"agora|gateway"} == 1)') == expected,
            120,
            f"{expected} scrape targets up",
        )

    def _summary(self) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"agora up exited early:\n{self.log.read_text()[-3000:]}")
        text = self.log.read_text(errors="replace")
        return text if "Monitoring:" in text else None

    def query(self, expr: str) -> list[dict[str, Any]]:
        try:
            body = httpx.get(
                f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10
            ).json()
        except (httpx.HTTPError, ValueError):
            return []
        result: list[dict[str, Any]] = body.get("data", {}).get("result", [])
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def targets(self, service: str) -> list[int]:
        entries = json.loads((self.monitoring / "targets" / "agora.json").read_text())
        return [
            int(t.rsplit(":", 1)[1])
            for e in entries
            if e["labels"]["service"] == service
            for t in e["targets"]
        ]

    def instance_process(self, port: int) -> psutil.Process:
        import psutil  # the dev tools' (a game day's); the production image has none

        assert self.process is not None
        for child in psutil.Process(self.process.pid).children(recursive=True):
            cmdline = child.cmdline()
            if "serve" in cmdline and str(port) in cmdline:
                return child
        raise RuntimeError(f"no service process on port {port}")

    def notifications(self) -> list[dict[str, Any]]:
        path = self.monitoring / "notifications.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.redis.stop()
        self.postgres.cleanup()
