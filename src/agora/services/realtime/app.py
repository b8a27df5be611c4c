"""The realtime service: WebSocket push of domain events, and presence, for any number of
instances (each delivers what it hears on the Redis events channel to its own sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

from agora.app import build_app
from agora.config import Settings
from agora.observability.logging import get_logger
from agora.pubsub import stop_listening
from agora.ratelimit.websocket import MessageLimits
from agora.runtime import Infrastructure, ServiceApp, ServiceParts
from agora.security.jwks import jwks_token_verifier
from agora.security.tokens import KeyResolver
from agora.services.realtime.hub import Hub, reconnect_delay_ms
from agora.services.realtime.parts import RealtimeParts
from agora.services.realtime.presence import Presence, run_heartbeat
from agora.services.realtime.routes import WEBSOCKET_DESCRIPTION, router
from agora.services.realtime.schemas import draining_frame
from agora.services.realtime.service import EventDispatcher
from agora.services.realtime.subscriber import Subscriber

log = get_logger(__name__)

# How long start-up waits for the first subscription, so "started" means "receiving events";
# with Redis down it starts anyway (readiness reports Redis) and the subscriber keeps trying.
_SUBSCRIBE_WAIT_S = 3.0


def create_app(
    settings: Settings, *, key_resolver: KeyResolver | None = None
) -> ServiceApp[RealtimeParts]:
    @asynccontextmanager
    async def start(infra: Infrastructure) -> AsyncIterator[ServiceParts[RealtimeParts]]:
        async with AsyncExitStack() as stack:
            verifier = await stack.enter_async_context(
                jwks_token_verifier(settings, key_resolver, breaker=infra.breakers.jwks)
            )
            hub = Hub()
            presence = Presence(
                infra.redis, instance_id=settings.instance_id, ttl_s=settings.presence_ttl_s
            )
            dispatcher = EventDispatcher(hub=hub, db=infra.db)
            subscriber = Subscriber(infra.redis, settings.events_channel, dispatcher.handle)
            parts = RealtimeParts(
                hub=hub,
                presence=presence,
                dispatcher=dispatcher,
                subscriber=subscriber,
                ws_limits=MessageLimits.from_settings(settings),
            )

            def local_entries() -> Iterator[tuple[str, str]]:
                return ((conn.user_id, conn.id) for conn in hub.connections())

            # Exit callbacks run last-in first-out: stop the background tasks, then the
            # deliveries they started, then the JWKS client.
            stack.push_async_callback(dispatcher.aclose)
            tasks = [
                asyncio.create_task(subscriber.run(), name="realtime-subscriber"),
                asyncio.create_task(
                    run_heartbeat(presence, local_entries, settings.ws_heartbeat_s),
                    name="realtime-presence-heartbeat",
                ),
            ]
            stack.push_async_callback(_cancel, tasks)
            jitter_ms = settings.ws_reconnect_jitter_ms
            infra.lifecycle.on_drain(
                lambda: hub.drain(lambda: draining_frame(reconnect_delay_ms(jitter_ms)))
            )
            try:
                async with asyncio.timeout(_SUBSCRIBE_WAIT_S):
                    await subscriber.subscribed.wait()
            except TimeoutError:
                log.warning("started before the events subscription; still retrying")

            def close_signed_by(kid: str) -> None:
                closed = hub.close_signed_by(kid)
                log.warning("closed the sockets of a revoked signing key", kid=kid, sockets=closed)

            yield ServiceParts(verifier=verifier, parts=parts, on_key_revoked=close_signed_by)

    return build_app(
        "realtime", settings, routers=[router], start=start, description=WEBSOCKET_DESCRIPTION
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    # ``stop_listening`` re-cancels: a subscriber can swallow one cancellation.
    await asyncio.gather(*(stop_listening(task) for task in tasks))
