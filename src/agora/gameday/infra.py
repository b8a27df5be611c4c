"""The game day's own dependencies, which its scenarios stop and start: a PostgreSQL (pgserver,
shipped as a package) and Redis as a master, a replica and three Sentinels (Debian's
``redis-server`` and ``redis-sentinel``), each a process group on 127.0.0.1 stopped by PID.

Never the machine's shared PostgreSQL or Redis: stopping those would break everyone else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess  # nosec B404 # starts the game day's own redis-server/redis-sentinel
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from agora.devstack.embedded import free_port
from agora.redis import keys

SENTINEL_SERVICE = "agora"
# Sentinel's view: a master silent this long is down, then a replica is promoted.
DOWN_AFTER_MS = 2000


def missing_redis_tools() -> list[str]:
    return [b for b in ("redis-server", "redis-sentinel") if shutil.which(b) is None]


@dataclass
class Node:
    name: str
    port: int
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603  # nosec B603 # fixed argv, no shell
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer on port {self.port}: see {self.log}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        self.process = None


@dataclass
class RedisSentinel:
    """Master + replica + three sentinels; ``url`` is what the services are given."""

    directory: Path
    master: Node = field(init=False)
    replica: Node = field(init=False)
    sentinels: list[Node] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        master_port, replica_port = free_port(), free_port()
        self.master = self._server("redis-master", master_port, [])
        self.replica = self._server(
            "redis-replica", replica_port, ["--replicaof", "127.0.0.1", str(master_port)]
        )
        for index in range(3):
            port = free_port()
            # Sentinel rewrites its file: a fresh one per run.
            conf = self.directory / f"sentinel-{index}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SENTINEL_SERVICE} 10000\n"
            )
            self.sentinels.append(
                Node(
                    f"sentinel-{index}",
                    port,
                    ["redis-sentinel", str(conf)],
                    self.directory / f"sentinel-{index}.log",
                )
            )

    def _server(self, name: str, port: int, extra: list[str]) -> Node:
        data = self.directory / name
        data.mkdir(exist_ok=True)
        argv = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--save", "", "--appendonly", "no", *extra,
        ]  # fmt: skip
        return Node(name, port, argv, self.directory / f"{name}.log")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}/0"

    def start(self) -> None:
        for node in (self.master, self.replica, *self.sentinels):
            node.start()

    def data_nodes(self) -> list[Node]:
        return [self.master, self.replica]

    def current_master_port(self) -> int | None:
        for sentinel in self.sentinels:
            try:
                client = redis.Redis(port=sentinel.port, socket_timeout=1)
                address = client.sentinel_get_master_addr_by_name(SENTINEL_SERVICE)
                client.close()
            except redis.RedisError:
                continue
            if isinstance(address, tuple):
                return int(address[1])
        return None

    def node_on(self, port: int) -> Node:
        return next(n for n in self.data_nodes() if n.port == port)

    def writable(self) -> bool:
        port = self.current_master_port()
        if port is None:
            return False
        try:
            client = redis.Redis(port=port, socket_timeout=1)
            ok = bool(client.set(keys.gameday_probe(), "1", ex=60))
            client.close()
        except redis.RedisError:
            return False
        return ok

    def stop(self) -> None:
        for node in (*self.sentinels, self.replica, self.master):
            node.kill()


@dataclass
class Postgres:
    """pgserver's PostgreSQL in ``directory``: stopped and started again by the scenarios."""

    directory: Path
    _server: Any = None

    def start(self) -> str:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.directory.parent))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server

        self._server = get_server(self.directory, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'agora'").fetchone() is None:
                conn.execute("CREATE DATABASE agora")
        base, _, query = uri.partition("?")
        return f"{base.rsplit('/', 1)[0]}/agora?{query}"

    def stop_server(self) -> None:
        """The outage: an immediate stop (what a crash or a lost host looks like)."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(
            ["-w", "stop", "-m", "immediate"], pgdata=self.directory, user=self._server.system_user
        )

    def start_server(self) -> None:
        self._server.ensure_postgres_running()

    def cleanup(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
