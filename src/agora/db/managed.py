"""One asyncpg pool with what asyncpg lacks: max lifetime, a health check before reuse, leak
detection and the ``agora_db_pool_connections`` / ``agora_db_query_duration_seconds`` metrics.

asyncpg stays the driver (fastest on the feed query here, and every repository speaks it);
its pool already gives the idle cull (``max_inactive_connection_lifetime``), the client
``command_timeout`` and the acquire timeout; the rest is added around checkout and checkin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

import asyncpg
from asyncpg.connection import LoggedQuery
from asyncpg.pool import PoolConnectionProxy

from agora.db.errors import is_connectivity_error
from agora.db.leaks import LeakDetector
from agora.observability.logging import get_logger
from agora.observability.metrics import DB_POOL_CONNECTIONS, DB_QUERY_DURATION

if TYPE_CHECKING:
    from agora.flags.faults import FaultSwitch

# What the pool hands out: asyncpg's proxy, typed apart from the connection it wraps.
Pooled: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
# What a repository takes: a pooled connection (the services) or a direct one (migrations,
# tools, tests). Both have the same query methods.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
PoolRole = Literal["primary", "replica"]

log = get_logger(__name__)

_OPERATIONS = frozenset({"select", "insert", "update", "delete", "with", "begin", "commit"})


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Defaults are the seed's; each is an ``AGORA_DB_*`` variable (see README)."""

    min_size: int = 10
    max_size: int = 100
    max_lifetime_s: float = 1800.0
    max_idle_s: float = 300.0
    command_timeout_s: float = 10.0
    acquire_timeout_s: float = 2.0
    # A connection idle longer than this is pinged before reuse; one used moments ago is not
    # (HikariCP's bypass window), so a busy pool pays no extra round trip.
    health_check_after_idle_s: float = 1.0
    leak_threshold_s: float = 300.0
    application_name: str = "agora"
    # How long a close waits for connections in use to come back before it cuts them (not an
    # AGORA_DB_* setting: a shutdown bound, below the drain timeouts).
    close_timeout_s: float = 10.0


class PoolTimeout(Exception):
    """No connection became free within the acquire timeout (the pool is exhausted)."""


def _operation(query: str) -> str:
    verb = query.lstrip(" \n\t(").split(None, 1)[0].lower() if query.strip() else ""
    return verb if verb in _OPERATIONS else "other"


async def _keep_session(_: asyncpg.Connection[asyncpg.Record]) -> None:
    """Replaces asyncpg's reset-on-release, a round trip per checkout (``RESET ALL``, ``UNLISTEN
    *``, unlock all advisory locks). Agora never changes session state: no SET, LISTEN or
    session-level advisory lock (only transaction-level ones). asyncpg still rolls back a
    transaction left open before calling this."""


class ManagedPool:
    def __init__(
        self, dsn: str, *, role: PoolRole, config: PoolConfig, faults: FaultSwitch | None = None
    ) -> None:
        self.dsn = dsn
        self.faults = faults
        self.role = role
        self.config = config
        self.leaks = LeakDetector(pool=role, threshold_s=config.leak_threshold_s)
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._born: dict[int, float] = {}
        self._last_used: dict[int, float] = {}
        self._waiting = 0
        self._gauges = {
            state: DB_POOL_CONNECTIONS.labels(state=state, pool=role)
            for state in ("active", "idle", "waiting")
        }
        self._durations = {
            op: DB_QUERY_DURATION.labels(operation=op, pool=role) for op in (*_OPERATIONS, "other")
        }

    async def open(self, *, min_size: int | None = None) -> None:
        cfg = self.config
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=cfg.min_size if min_size is None else min_size,
            max_size=cfg.max_size,
            command_timeout=cfg.command_timeout_s,
            max_inactive_connection_lifetime=cfg.max_idle_s,
            timeout=cfg.acquire_timeout_s,  # connect timeout: a black-holed server
            reset=_keep_session,
            init=self._on_connect,
            server_settings={
                "application_name": cfg.application_name,
                "statement_timeout": str(int(cfg.command_timeout_s * 1000)),
                "idle_in_transaction_session_timeout": "60000",
            },
        )
        self.leaks.start()
        self._publish()

    async def close(self) -> None:
        await self.leaks.stop()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), self.config.close_timeout_s)
            except TimeoutError:
                # asyncpg's close waits for every connection to come back, for ever: one never
                # released, or left behind by an acquire that timed out while connecting
                # (MagicStack/asyncpg#467, #547), would hold a shutdown (and a drain) open.
                log.warning(
                    "database pool did not close in time; its connections were cut",
                    pool=self.role,
                    timeout_s=self.config.close_timeout_s,
                )
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise RuntimeError("the pool is not open")
        return self._pool

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Pooled]:
        """A healthy connection; :class:`PoolTimeout` when none frees up in time, connectivity
        errors as the driver raises them."""
        if self.faults is not None:
            # The fault switch's boundary: an injected error looks like an unreachable server.
            await self.faults.before_call("postgres")
        # The pool this connection goes back to, even if a close has begun meanwhile (a close
        # waits for it, within close_timeout_s).
        pool = self.pool
        self._waiting += 1
        self._publish()
        try:
            conn = await self._checkout(pool)
        finally:
            self._waiting -= 1
        token = self.leaks.taken()
        self._publish()
        try:
            yield conn
        finally:
            self.leaks.returned(token)
            await self._checkin(conn, pool)
            self._publish()

    def stats(self) -> dict[str, int]:
        if self._pool is None:
            return {"active": 0, "idle": 0, "waiting": self._waiting, "size": 0}
        size, idle = self._pool.get_size(), self._pool.get_idle_size()
        return {"active": size - idle, "idle": idle, "waiting": self._waiting, "size": size}

    async def _checkout(self, pool: asyncpg.Pool[asyncpg.Record]) -> Pooled:
        cfg = self.config
        deadline = time.monotonic() + cfg.acquire_timeout_s
        # Every stale or broken connection found is closed and the next one tried; bounded
        # by the pool size plus one fresh connection.
        for _ in range(cfg.max_size + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                conn = await pool.acquire(timeout=remaining)
            except TimeoutError as exc:
                # asyncpg raises the same error for "no slot freed up" and "connecting took
                # too long"; with free slots left, nobody was waiting for a slot.
                if pool.get_size() < cfg.max_size:
                    raise
                raise PoolTimeout from exc
            try:
                usable = await self._usable(conn)
            except BaseException:
                await pool.release(conn)
                raise
            if usable:
                return conn
            conn.terminate()
            await pool.release(conn)
        raise PoolTimeout

    async def _usable(self, conn: Pooled) -> bool:
        pid = conn.get_server_pid()
        now = time.monotonic()
        if now - self._born.get(pid, now) > self.config.max_lifetime_s:
            return False
        if now - self._last_used.get(pid, now) <= self.config.health_check_after_idle_s:
            return True
        try:
            await conn.execute("SELECT 1", timeout=min(1.0, self.config.command_timeout_s))
        except Exception as exc:
            if is_connectivity_error(exc):
                return False
            raise
        return True

    async def _checkin(self, conn: Pooled, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        if not is_lost(conn):
            pid = conn.get_server_pid()
            now = time.monotonic()
            self._last_used[pid] = now
            # Past its lifetime: closed now rather than parked; asyncpg reconnects the slot
            # lazily, so the pool turns over without a burst of reconnects.
            if now - self._born.get(pid, now) > self.config.max_lifetime_s:
                conn.terminate()
        await pool.release(conn)

    async def _on_connect(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        pid = conn.get_server_pid()
        self._born[pid] = self._last_used[pid] = time.monotonic()

        def forget(_: Connection) -> None:
            self._born.pop(pid, None)
            self._last_used.pop(pid, None)

        conn.add_termination_listener(forget)
        conn.add_query_logger(self._observe)

    def _observe(self, record: LoggedQuery) -> None:
        self._durations[_operation(record.query)].observe(record.elapsed)

    def _publish(self) -> None:
        stats = self.stats()
        for state, gauge in self._gauges.items():
            gauge.set(stats[state])


def is_lost(conn: Connection) -> bool:
    """The connection is closed: whatever error the caller saw, the server went away."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True  # asyncpg already took back a connection the server closed
