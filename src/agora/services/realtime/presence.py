"""Who is online, across every realtime instance, kept in Redis.

One hash per user, ``agora:presence:{user_id}`` (``agora.redis.keys``): field
``{instance_id}:{connection_id}`` -> expiry (epoch seconds). A user is online while any
field has not expired. Instances refresh the fields of their own sockets on a heartbeat, so
the entries of an instance that crashed (and never sent its HDELs) simply age out; the key's
own TTL removes users nobody refreshes.

Presence is advisory: a failed write (``presence_write``, fails open) is logged and never
breaks a socket; a read that cannot reach Redis (``presence_read``, fails closed) is a 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from redis.asyncio import Redis

from agora.observability.logging import get_logger
from agora.redis import keys, uses
from agora.redis.access import RedisAccess, RedisUnavailable

log = get_logger(__name__)

PRESENCE_ERRORS = (RedisUnavailable,)
# Users per heartbeat pipeline: bounds one round trip's size with many thousands of sockets.
_REFRESH_CHUNK = 1000


presence_key = keys.presence


class Presence:
    def __init__(self, access: RedisAccess, *, instance_id: str, ttl_s: int) -> None:
        self._access = access
        self._instance_id = instance_id
        self._ttl_s = ttl_s
        # Set while no heartbeat is in flight. A disconnect waits for it, or a heartbeat that
        # listed the socket just before it closed could re-add its field after the HDEL and
        # show the user online for another TTL.
        self._no_heartbeat = asyncio.Event()
        self._no_heartbeat.set()

    def field(self, connection_id: str) -> str:
        return f"{self._instance_id}:{connection_id}"

    async def connected(self, user_id: str, connection_id: str) -> None:
        try:
            await self.refresh([(user_id, connection_id)])
        except PRESENCE_ERRORS as exc:
            # The next heartbeat writes it again.
            log.warning("presence not recorded", user_id=user_id, error=repr(exc))

    async def disconnected(self, user_id: str, connection_id: str) -> None:
        try:
            await self._no_heartbeat.wait()
            key, field = presence_key(user_id), self.field(connection_id)
            await self._access.call(uses.PRESENCE_WRITE, lambda r: r.hdel(key, field))
        except PRESENCE_ERRORS as exc:
            # The field ages out after the TTL since no heartbeat refreshes it any more.
            log.warning("presence not cleared", user_id=user_id, error=repr(exc))

    async def refresh(self, entries: Iterable[tuple[str, str]]) -> None:
        """Write fresh expiries for ``(user_id, connection_id)`` pairs, one pipeline per chunk
        of users (HSET of all a user's fields + EXPIRE of the key)."""
        expiry = int(time.time()) + self._ttl_s
        by_user: dict[str, dict[str, int]] = {}
        for user_id, connection_id in entries:
            by_user.setdefault(user_id, {})[self.field(connection_id)] = expiry
        users = list(by_user.items())
        for start in range(0, len(users), _REFRESH_CHUNK):
            chunk = users[start : start + _REFRESH_CHUNK]

            async def write(client: Redis, chunk: list[tuple[str, dict[str, int]]] = chunk) -> None:
                async with client.pipeline(transaction=False) as pipe:
                    for user_id, fields in chunk:
                        key = presence_key(user_id)
                        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                        pipe.expire(key, self._ttl_s)
                    await pipe.execute()

            await self._access.call(uses.PRESENCE_WRITE, write)

    async def heartbeat(self, entries: Iterable[tuple[str, str]]) -> None:
        self._no_heartbeat.clear()
        try:
            await self.refresh(entries)
        finally:
            self._no_heartbeat.set()

    async def is_online(self, user_id: str) -> bool:
        """Fails closed: without Redis, 503 ``unavailable`` (the caller cannot answer)."""
        key = presence_key(user_id)
        fields: dict[bytes | str, bytes | str] = await self._access.require(
            uses.PRESENCE_READ, lambda r: r.hgetall(key)
        )
        now = time.time()
        stale: list[bytes | str] = []
        online = False
        for name, value in fields.items():
            try:
                expires_at = float(value)
            except ValueError:
                expires_at = 0.0
            if expires_at > now:
                online = True
            else:
                stale.append(name)
        if stale:
            # Housekeeping of crashed instances' fields; losing this write changes nothing.
            await self._access.attempt(
                uses.PRESENCE_WRITE, lambda r: r.hdel(key, *stale), otherwise=0
            )
        return online


async def run_heartbeat(
    presence: Presence, entries: Callable[[], Iterable[tuple[str, str]]], interval_s: float
) -> None:
    """Refresh this instance's entries (``entries()`` lists ``(user_id, connection_id)``)
    forever; failures are logged and retried on the next beat."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await presence.heartbeat(entries())
        except PRESENCE_ERRORS as exc:
            log.warning("presence heartbeat failed", error=repr(exc))
        except Exception:
            log.exception("presence heartbeat failed")
