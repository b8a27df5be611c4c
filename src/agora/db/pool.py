"""The asyncpg connection pool of one process, and its transaction helpers.

One pool per process (one worker per process, scale by instances), sized so that
``instances x max_size`` stays under PostgreSQL's ``max_connections``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg

from agora.errors import ServiceUnavailable

Connection: TypeAlias = asyncpg.Connection


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes ``postgresql://``; SQLAlchemy-style driver suffixes are dropped."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


async def _keep_session(_: Connection) -> None:
    """Replaces asyncpg's reset-on-release, a round trip per checkout (``RESET ALL``, ``UNLISTEN
    *``, unlock all advisory locks). Agora never changes session state: no SET, LISTEN or
    session-level advisory lock (only transaction-level ones). asyncpg still rolls back a
    transaction left open before calling this."""


class Database:
    """Owns the pool; repositories get connections from it, one transaction per unit of work."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 20,
        command_timeout_s: float = 10.0,
        acquire_timeout_s: float = 2.0,
        application_name: str = "agora",
    ) -> None:
        self._url = asyncpg_dsn(url)
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout_s = command_timeout_s
        self._acquire_timeout_s = acquire_timeout_s
        self._application_name = application_name
        self._pool: asyncpg.Pool | None = None

    async def connect(self) -> None:
        statement_timeout_ms = str(int(self._command_timeout_s * 1000))
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=self._min_size,
            max_size=self._max_size,
            command_timeout=self._command_timeout_s,
            max_inactive_connection_lifetime=300.0,
            reset=_keep_session,
            server_settings={
                "application_name": self._application_name,
                "statement_timeout": statement_timeout_ms,
                "idle_in_transaction_session_timeout": "60000",
            },
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.connect() has not been awaited")
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection; waiting longer than the acquire timeout becomes a 503."""
        try:
            conn = await self.pool.acquire(timeout=self._acquire_timeout_s)
        except TimeoutError as exc:
            raise ServiceUnavailable(
                "the database is busy; try again shortly", headers={"Retry-After": "1"}
            ) from exc
        except (OSError, asyncpg.PostgresConnectionError) as exc:
            raise ServiceUnavailable(
                "the database is unavailable", headers={"Retry-After": "5"}
            ) from exc
        try:
            yield conn
        finally:
            await self.pool.release(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)

    async def ping(self, timeout_s: float = 1.0) -> None:
        async with asyncio.timeout(timeout_s), self.connection() as conn:
            await conn.fetchval("SELECT 1")
