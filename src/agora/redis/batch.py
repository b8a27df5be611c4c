"""Several commands in one round trip, for the hot path (``RedisAccess.send_all``).

redis-py's ``Pipeline`` costs more CPU than the rest of a cached read: its command stack,
retry wrapper and per-command encoding, and the pool's checkout around it (a lock, three
connection-count metrics, a connect check, a "does the socket hold stale data" read, an event
dispatch on release). ``Batches`` sends the packed commands itself on a connection it keeps
between calls, taken from the client's pool (so the pool's bound still counts it) and given
back when more than ``keep`` sit idle.

Used only when the request is not traced: a sampled request takes redis-py's pipeline, whose
instrumentation makes its span. Connection trouble is left to that pipeline too, which
retries on a fresh connection (and, after a Sentinel failover, on the new master). A
connection is kept only after every reply of a call was read; anything else (an error, a
timeout, a cancellation: replies may still be on their way) disconnects it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[str | int | float, ...]

# Connection trouble the pipeline's retry is for.
_RETRIED = (RedisConnectionError, RedisTimeoutError, OSError)


class _StaleMaster(Exception):
    """A write refused with READONLY: this connection reached a former master."""


class Batches:
    def __init__(self, client: Redis, *, keep: int = 64) -> None:
        self._client = client
        pool = client.connection_pool
        # At most half the pool sits here: the other uses keep theirs.
        self._keep = min(keep, pool.max_connections // 2)
        self._socket_timeout = pool.connection_kwargs.get("socket_timeout")
        self._idle: list[AbstractConnection] = []

    async def send_all(self, commands: Sequence[Command]) -> list[Any]:
        """The replies of ``commands``, an error reply in its place (as
        ``execute(raise_on_error=False)`` returns it). Unbounded in time: the caller bounds
        the call (``RedisAccess.call``)."""
        if not trace.get_current_span().is_recording():
            try:
                return await self._lean(commands)
            except (*_RETRIED, _StaleMaster):
                pass  # redis-py's own pipeline below retries on a fresh connection
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def _lean(self, commands: Sequence[Command]) -> list[Any]:
        connection = self._idle.pop() if self._idle else await self._checkout()
        try:
            # No health check: a dead connection fails this call, which the pipeline retries.
            await connection.send_packed_command(pack(commands), check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response(timeout=math.inf))
                except ReadOnlyError as exc:
                    raise _StaleMaster from exc
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await connection.disconnect(nowait=True)
            await self._give_back(connection)
            raise
        await self._keep_or_give_back(connection)
        return replies

    async def _keep_or_give_back(self, connection: AbstractConnection) -> None:
        if len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            await self._give_back(connection)

    async def _checkout(self) -> AbstractConnection:
        pool = self._client.connection_pool
        connection: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py: untyped
        # While it is ours, no socket timeout: with one, redis-py runs every write in a task
        # of its own (``asyncio.wait_for``); the caller's deadline bounds the whole call.
        connection.socket_timeout = None
        return connection

    async def _give_back(self, connection: AbstractConnection) -> None:
        connection.socket_timeout = self._socket_timeout
        await self._client.connection_pool.release(connection)


def pack(commands: Sequence[Command]) -> bytes:
    """RESP arrays of bulk strings, as redis-py's encoder writes them (floats by ``repr``)."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = (repr(arg) if isinstance(arg, float) else str(arg)).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
