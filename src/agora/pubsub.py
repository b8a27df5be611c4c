"""A Redis pub/sub listener: every message of one channel, forever, whatever Redis does (the
realtime instances' events; every instance's signing-key revocations).

Pub/sub is at-most-once: events published while this instance is disconnected are lost. That
is acceptable by design: the feed and the notifications list (PostgreSQL) are the source of
truth, and the push is only a hint to refresh sooner.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextlib import suppress

from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

from agora.observability.logging import get_logger
from agora.redis.access import RedisAccess

log = get_logger(__name__)

Handler = Callable[[bytes], Awaitable[None]]


class Subscriber:
    """Subscribes to one channel and hands each message's data to ``handler``.

    Any failure (Redis down, failover, a connection silently gone) drops the subscription
    and retries with capped exponential backoff and jitter, so instances do not reconnect in
    lockstep after a Redis restart. Only cancellation stops it. (The ``events_subscribe`` use
    of ``agora.redis``: one long-lived connection, so no per-call timeout or breaker.)
    """

    def __init__(  # noqa: PLR0913  # five keyword-only tuning knobs with defaults
        self,
        redis: RedisAccess,
        channel: str,
        handler: Handler,
        *,
        poll_s: float = 1.0,
        idle_ping_s: float = 15.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        on_subscribe: Callable[[], None] | None = None,
    ) -> None:
        """``on_subscribe`` runs after every (re)subscription: what was published while the
        listener was away is lost, so a listener that must not miss anything catches up there."""
        self._redis = redis
        self._channel = channel
        self._handler = handler
        self._poll_s = poll_s
        self._idle_ping_s = idle_ping_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._on_subscribe = on_subscribe
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        backoff = self._backoff_initial_s
        while True:
            delay = backoff
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self.subscribed.set()
                if self._on_subscribe is not None:
                    self._on_subscribe()
                backoff = self._backoff_initial_s
                log.info("subscribed to events", channel=self._channel)
                await self._listen(pubsub)
            except Exception as exc:
                delay = random.uniform(backoff / 2, backoff)  # noqa: S311  # nosec B311 # jitter
                log.warning(
                    "event subscription failed; reconnecting",
                    channel=self._channel,
                    error=repr(exc),
                    retry_in_s=round(delay, 3),
                )
            finally:
                self.subscribed.clear()
                with suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self._backoff_max_s)

    async def _listen(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        ping_sent_at: float | None = None
        while True:
            message = await pubsub.get_message(timeout=self._poll_s)
            now = loop.time()
            if message is None:
                # A connection can die without an error (a dropped route, a frozen peer):
                # after a quiet spell ask Redis for a pong, and give up on it if none comes.
                if ping_sent_at is not None and now - ping_sent_at > self._idle_ping_s:
                    raise RedisConnectionError("no pong from Redis; the subscription is dead")
                if ping_sent_at is None and now - last_heard > self._idle_ping_s:
                    await pubsub.ping()
                    ping_sent_at = now
                continue
            last_heard = now
            ping_sent_at = None
            if message.get("type") != "message":
                continue
            try:
                await self._handler(message["data"])
            except Exception:
                # A bad event must not cost the subscription (and everyone else's events).
                log.exception("event handling failed")


async def stop_listening(task: asyncio.Task[None]) -> None:
    """Cancel a ``Subscriber.run`` task and wait for it to end. redis-py's ``get_message``
    can swallow a cancellation that lands while its own read timeout fires (the task then
    goes on listening, and a shutdown waits forever): cancel again until it is done."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    with suppress(asyncio.CancelledError, Exception):
        task.result()
