"""The database of one process: a primary pool, optional read-replica pools, the ``postgres``
circuit breaker and retries of transient failures.

One pool per process (one worker per process, scale by instances), sized so that
``instances x max_size`` stays under PostgreSQL's ``max_connections`` (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from agora.db.errors import is_connectivity_error, is_rolled_back
from agora.db.managed import Connection, ManagedPool, PoolConfig, PoolTimeout, is_lost
from agora.db.routing import RecentWriters, ReplicaSet
from agora.errors import ServiceUnavailable
from agora.observability.logging import get_logger
from agora.resilience.breaker import CircuitBreaker, CircuitOpenError

if TYPE_CHECKING:
    from agora.flags.faults import FaultSwitch

log = get_logger(__name__)

T = TypeVar("T")

_BACKOFF_BASE_S = 0.05
_BACKOFF_CAP_S = 1.0


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes ``postgresql://``; SQLAlchemy-style driver suffixes are dropped."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class DatabaseUnavailable(ServiceUnavailable):
    """A 503 from the database layer.

    ``transient``: a connection failed, so trying again soon may work (not so when the breaker
    is open or the pool is exhausted: the caller should back off). ``before_work``: no
    statement of the unit of work had been sent, so even a write may be tried again.
    """

    def __init__(
        self, message: str, *, retry_after_s: float, transient: bool, before_work: bool
    ) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})
        self.transient = transient
        self.before_work = before_work


class Database:
    """Owns the pools; repositories get connections from it, one unit of work at a time."""

    def __init__(  # noqa: PLR0913  # keyword-only collaborators, wired once in db.factory
        self,
        url: str,
        *,
        replica_urls: Sequence[str] = (),
        breaker: CircuitBreaker | None = None,
        writers: RecentWriters | None = None,
        retry_attempts: int = 3,
        replica_cooldown_s: float = 5.0,
        faults: FaultSwitch | None = None,
        **config: Any,
    ) -> None:
        self.config = PoolConfig(**config)
        self.primary = ManagedPool(
            asyncpg_dsn(url), role="primary", config=self.config, faults=faults
        )
        self.replicas = ReplicaSet(
            [
                ManagedPool(asyncpg_dsn(u), role="replica", config=self.config, faults=faults)
                for u in replica_urls
            ],
            cooldown_s=replica_cooldown_s,
        )
        self.breaker = breaker
        self.writers = writers or RecentWriters(None, window_s=0.0)
        self.retry_attempts = max(1, retry_attempts)

    async def connect(self) -> None:
        await self.primary.open()
        # Replicas connect on demand: one that is down at start must not stop the service.
        for replica in self.replicas.pools:
            await replica.open(min_size=0)

    async def close(self) -> None:
        for pool in (self.primary, *self.replicas.pools):
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The primary's asyncpg pool (for tools that need the raw driver)."""
        return self.primary.pool

    @asynccontextmanager
    async def connection(
        self, *, read_only: bool = False, user_id: object = None, writes: bool | None = None
    ) -> AsyncIterator[Connection]:
        """A pooled connection. Two separate questions:

        - ``read_only``: which pool. True may be served by a replica (unless ``user_id``
          wrote moments ago); False is the primary.
        - ``writes``: does the call write? Then ``user_id`` is marked as a recent writer, so
          their next reads, on any instance, see it. Defaults to ``not read_only``; a read
          that must see the primary without being a write (a cache fill) says
          ``read_only=False, writes=False`` and leaves the reader on the replicas.
        """
        user = None if user_id is None else str(user_id)
        marks_writer = (not read_only) if writes is None else writes
        if read_only and self.replicas.pools:
            async with AsyncExitStack() as stack:
                picked = await self._replica_connection(stack, user)
                if picked is not None:
                    replica, conn = picked
                    try:
                        yield conn
                    except Exception as exc:
                        if not (is_connectivity_error(exc) or is_lost(conn)):
                            raise
                        self.replicas.mark_down(replica)
                        raise DatabaseUnavailable(
                            "a read replica failed",
                            retry_after_s=1,
                            transient=True,
                            before_work=False,
                        ) from exc
                    return
        try:
            async with self._primary_connection() as conn:
                yield conn
        finally:
            if marks_writer and user is not None and self.replicas.pools:
                await self.writers.mark(user)

    @asynccontextmanager
    async def transaction(self, *, user_id: object = None) -> AsyncIterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        async with self.connection(user_id=user_id) as conn, conn.transaction():
            yield conn

    async def run(
        self,
        work: Callable[[Connection], Awaitable[T]],
        *,
        read_only: bool = False,
        user_id: object = None,
        writes: bool | None = None,
        transaction: bool = False,
        single_statement: bool = False,
    ) -> T:
        """Run ``work`` and retry it, with exponential backoff and full jitter, only when a
        retry cannot apply a write twice:

        - failures before ``work`` got its connection (nothing was sent);
        - for reads, a connection lost at any point;
        - serialization failures and deadlocks when ``work`` is one transaction
          (``transaction=True``, or ``single_statement=True`` for one autocommit statement):
          PostgreSQL rolled all of it back before reporting them.

        A write whose connection dropped mid-way (perhaps during COMMIT) is never retried: it
        may have been applied.
        """
        is_read = read_only or writes is False  # a read may be retried on whichever pool
        for attempt in range(self.retry_attempts):
            started = False
            try:
                async with self.connection(
                    read_only=read_only, user_id=user_id, writes=writes
                ) as conn:
                    started = True
                    if transaction:
                        async with conn.transaction():
                            return await work(conn)
                    return await work(conn)
            except Exception as exc:
                atomic = is_read or transaction or single_statement
                retry = (
                    (
                        isinstance(exc, DatabaseUnavailable)
                        and exc.transient
                        and (exc.before_work or is_read)
                    )
                    or (not started and is_connectivity_error(exc))
                    or (atomic and is_rolled_back(exc))
                )
                if not retry or attempt + 1 >= self.retry_attempts:
                    raise
                cap = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)
                delay = random.uniform(0, cap)  # noqa: S311  # nosec B311 # jitter, not a secret
                log.info("retrying database work", attempt=attempt + 1, error=type(exc).__name__)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)

    async def ping(self, timeout_s: float = 1.0) -> None:
        async with asyncio.timeout(timeout_s), self.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def _replica_connection(
        self, stack: AsyncExitStack, user: str | None
    ) -> tuple[ManagedPool, Connection] | None:
        if user is not None and await self.writers.recently_wrote(user):
            return None
        replica = self.replicas.pick()
        if replica is None:
            return None
        try:
            conn: Connection = await stack.enter_async_context(replica.acquire())
        except PoolTimeout:
            return None
        except Exception as exc:
            if not is_connectivity_error(exc):
                raise
            self.replicas.mark_down(replica)
            return None
        return replica, conn

    @asynccontextmanager
    async def _primary_connection(self) -> AsyncIterator[Connection]:
        breaker = self.breaker
        _admit(breaker)
        acquired = lost = False
        try:
            async with self.primary.acquire() as conn:
                acquired = True
                try:
                    yield conn
                except Exception:
                    lost = is_lost(conn)  # checked before release detaches it
                    raise
        except PoolTimeout:
            _release(breaker)
            raise DatabaseUnavailable(
                "the database is busy; try again shortly",
                retry_after_s=1,
                transient=False,
                before_work=True,
            ) from None
        except asyncio.CancelledError:
            _release(breaker)
            raise
        except Exception as exc:
            if not (lost or is_connectivity_error(exc)):
                if breaker is not None:
                    breaker.record_success()  # the server answered
                raise
            raise _unavailable(breaker, before_work=not acquired) from exc
        else:
            if breaker is not None:
                breaker.record_success()


def _release(breaker: CircuitBreaker | None) -> None:
    """The call told nothing about the dependency (no connection was had, or cancelled)."""
    if breaker is not None:
        breaker.release()


def _admit(breaker: CircuitBreaker | None) -> None:
    """Through the breaker, or a 503 without trying while it is open."""
    if breaker is None:
        return
    try:
        breaker.allow()
    except CircuitOpenError as exc:
        raise DatabaseUnavailable(
            "the database is unavailable; try again later",
            retry_after_s=exc.retry_after_s,
            transient=False,
            before_work=True,
        ) from None


def _unavailable(breaker: CircuitBreaker | None, *, before_work: bool) -> DatabaseUnavailable:
    """A connection failed: counted by the breaker, a 503 that may be retried."""
    if breaker is not None:
        breaker.record_failure()
    retry_after = breaker.retry_after_s if breaker is not None else 0.0
    return DatabaseUnavailable(
        "the database is unavailable; try again later",
        retry_after_s=retry_after or 5.0,
        transient=True,
        before_work=before_work,
    )
