"""Emergency signing-key revocation reaches every instance of every service within seconds.

``agora keys revoke KID`` marks the key revoked in PostgreSQL (it leaves every auth
instance's JWKS and never signs again) and then announces it on ``AGORA_KEY_EVENTS_CHANNEL``.
Every instance listens: its token verifier forgets the key at once (auth's key store also
reloads, so it signs with the successor; the JWKS caches of posts and realtime remember the
kid as revoked, so a stale JWKS cannot bring it back, and may refetch at once for the
successor's kid); and the service's own hook runs (realtime closes the sockets the key's
tokens opened, with 4003). Pub/sub keeps nothing for a listener that was away: after every
(re)subscription the verifier resyncs (the JWKS caches refetch on the next token), so an
announcement missed during a Redis outage costs at most the outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
from redis.asyncio import Redis

from agora.observability.logging import get_logger
from agora.pubsub import Subscriber, stop_listening
from agora.redis.access import RedisAccess
from agora.security.tokens import TokenVerifier

log = get_logger(__name__)


def revocation_message(kid: str) -> bytes:
    return orjson.dumps({"type": "key.revoked", "kid": kid})


async def announce_key_revocation(redis: Redis, channel: str, kid: str) -> int:
    """Publish the revocation; returns how many instances heard it (raises on a Redis error)."""
    listeners: int = await redis.publish(channel, revocation_message(kid))
    return listeners


@asynccontextmanager
async def following_key_revocations(
    redis: RedisAccess,
    channel: str,
    verifier: TokenVerifier,
    on_revoked: Callable[[str], None] | None = None,
) -> AsyncIterator[Subscriber]:
    """Listen for revocations while the block runs; ``on_revoked(kid)`` runs after the
    verifier has forgotten the key (it must not block: it runs on the listener's task)."""

    async def handle(raw: bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("ignoring a malformed key event")
            return
        kid = message.get("kid") if isinstance(message, dict) else None
        if message.get("type") != "key.revoked" or not isinstance(kid, str) or not kid:
            log.warning("ignoring a malformed key event")
            return
        # Only ever removes trust: a forged message can refuse tokens, never admit one.
        verifier.revoke_key(kid)
        log.warning("signing key revoked; its tokens are refused from now on", kid=kid)
        if on_revoked is not None:
            on_revoked(kid)

    subscriptions = 0

    def resubscribed() -> None:
        # The first subscription missed nothing: the keys were loaded at start-up.
        nonlocal subscriptions
        subscriptions += 1
        if subscriptions > 1:
            log.info("key revocations resubscribed; checking the keys again")
            verifier.resync()

    subscriber = Subscriber(redis, channel, handle, on_subscribe=resubscribed)
    task = asyncio.create_task(subscriber.run(), name="key-revocations")
    try:
        yield subscriber
    finally:
        await stop_listening(task)
