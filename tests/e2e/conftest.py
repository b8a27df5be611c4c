"""Real ``agora serve`` processes on free ports, against the test PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import FAST_HASH, GENEROUS_LIMITS, free_port

pytestmark = pytest.mark.e2e


@dataclass
class ServiceProcess:
    service: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 65.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@dataclass
class Cluster:
    """Starts services; the first auth instance's JWKS is what posts and realtime trust."""

    env: dict[str, str]
    workdir: Path
    processes: list[ServiceProcess] = field(default_factory=list)

    def start(self, service: str, *, extra_env: dict[str, str] | None = None) -> ServiceProcess:
        return self.start_many(service, 1, extra_env=extra_env)[0]

    def start_many(
        self, service: str, count: int, *, extra_env: dict[str, str] | None = None
    ) -> list[ServiceProcess]:
        """``count`` instances of one service, started together (they boot in parallel)."""
        started = [self._spawn(service, extra_env) for _ in range(count)]
        for proc in started:
            self._wait_ready(proc)
        if service == "auth" and "AGORA_AUTH_JWKS_URL" not in self.env:
            self.env["AGORA_AUTH_JWKS_URL"] = f"{started[0].url}/api/v1/auth/.well-known/jwks.json"
        return started

    def _spawn(self, service: str, extra_env: dict[str, str] | None) -> ServiceProcess:
        port = free_port()
        log_path = self.workdir / f"{service}-{port}.log"
        env = {**self.env, **(extra_env or {})}
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "agora", "serve", service, "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        proc = ServiceProcess(service, port, process, log_path)
        self.processes.append(proc)
        return proc

    @staticmethod
    def _wait_ready(proc: ServiceProcess, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.process.poll() is not None:
                raise RuntimeError(f"{proc.service} exited early:\n{proc.logs()}")
            try:
                if httpx.get(f"{proc.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{proc.service} not ready after {timeout}s:\n{proc.logs()}")

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.process.kill()


def service_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of every ``agora serve`` process the tests start: this run's database
    and Redis, JSON logs, small pools, fast hashing, and the services' own limits on but out
    of reach (the tests of limits set theirs), then ``overrides``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGORA_")}
    env.update(
        {
            "AGORA_DATABASE_URL": database_url,
            "AGORA_REDIS_URL": redis_url,
            "AGORA_LOG_FORMAT": "json",
            "AGORA_DB_POOL_MIN_SIZE": "1",
            "AGORA_DB_POOL_MAX_SIZE": "5",
            "AGORA_JWKS_REFETCH_COOLDOWN_S": "0.5",
            **{f"AGORA_{k.upper()}": str(v) for k, v in FAST_HASH.items()},
            **{f"AGORA_{k.upper()}": v for k, v in GENEROUS_LIMITS.items()},
        }
    )
    env.update(overrides)
    return env


@pytest.fixture
def cluster(
    database_url: str,
    redis_url: str,
    clean_state: None,  # noqa: ARG001  # requested for its side effect
    tmp_path: Path,
) -> Iterator[Cluster]:
    running = Cluster(env=service_env(database_url, redis_url), workdir=tmp_path)
    yield running
    running.stop_all()
