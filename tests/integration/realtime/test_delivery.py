"""Events published on the Redis channel reach the right local sockets, and only those."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from agora.config import Settings
from agora.events import Event
from agora.services.realtime.app import create_app
from tests.conftest import TokenFactory
from tests.integration.realtime.conftest import (
    RunningServer,
    Serve,
    assert_nothing_queued,
    open_socket,
    receive,
)

Emit = Callable[[Event], Awaitable[None]]


def post_event(author_id: str, content: str = "hello world") -> Event:
    post = {"id": "p-1", "author_id": author_id, "content": content, "like_count": 0}
    return Event(type="post.created", payload={"post": post}, author_id=author_id)


def notification_event(recipient_id: str, actor_id: str) -> Event:
    notification = {"id": "n-1", "kind": "like", "actor_id": actor_id, "post_id": "p-1"}
    return Event(
        type="notification", payload={"notification": notification}, recipient_id=recipient_id
    )


async def test_notification_reaches_all_sockets_of_the_recipient_only(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    emit: Emit,
) -> None:
    alice, bob = make_user(), make_user()
    async with (
        open_socket(realtime, tokens(alice)) as alice_tab1,
        open_socket(realtime, tokens(alice), via="query") as alice_tab2,
        open_socket(realtime, tokens(bob)) as bob_ws,
    ):
        await emit(notification_event(alice, actor_id=bob))
        for ws in (alice_tab1, alice_tab2):
            message = await receive(ws)
            assert message == {
                "type": "notification",
                "notification": {"id": "n-1", "kind": "like", "actor_id": bob, "post_id": "p-1"},
            }
        await assert_nothing_queued(bob_ws)


async def test_post_created_reaches_online_followers_only(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    follow: Callable[[str, str], None],
    emit: Emit,
) -> None:
    author, follower, stranger, follows_someone_else = (make_user() for _ in range(4))
    follow(follower, author)
    follow(follows_someone_else, stranger)
    follow(author, follower)  # the author follows back: irrelevant to their own post
    async with (
        open_socket(realtime, tokens(author)) as author_ws,
        open_socket(realtime, tokens(follower)) as follower_tab1,
        open_socket(realtime, tokens(follower)) as follower_tab2,
        open_socket(realtime, tokens(stranger)) as stranger_ws,
        open_socket(realtime, tokens(follows_someone_else)) as other_ws,
    ):
        await emit(post_event(author, content="first post"))
        for ws in (follower_tab1, follower_tab2):
            message = await receive(ws)
            assert message["type"] == "post.created"
            assert message["post"]["content"] == "first post"
            assert message["post"]["author_id"] == author
        for ws in (author_ws, stranger_ws, other_ws):
            await assert_nothing_queued(ws)


async def test_post_created_for_an_author_without_online_followers_reaches_nobody(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    emit: Emit,
) -> None:
    author, lonely = make_user(), make_user()
    async with open_socket(realtime, tokens(lonely)) as ws:
        await emit(post_event(author))
        await emit(notification_event(lonely, actor_id=author))
        assert (await receive(ws))["type"] == "notification"
        await realtime.dispatcher.drain()
        await assert_nothing_queued(ws)


async def test_the_client_gets_the_payload_fields_beside_the_type(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    emit: Emit,
) -> None:
    alice = make_user()
    async with open_socket(realtime, tokens(alice)) as ws:
        await emit(
            Event(type="notification", payload={"notification": {"id": "n"}}, recipient_id=alice)
        )
        assert await receive(ws) == {"type": "notification", "notification": {"id": "n"}}


async def test_each_instance_delivers_to_its_own_sockets(
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    follow: Callable[[str, str], None],
    emit: Emit,
    serve: Serve,
) -> None:

    first = await serve(create_app(settings, key_resolver=tokens.resolver))
    second = await serve(create_app(settings, key_resolver=tokens.resolver))
    author, reader_one, reader_two = make_user(), make_user(), make_user()
    follow(reader_one, author)
    follow(reader_two, author)
    async with (
        open_socket(first, tokens(reader_one)) as ws_one,
        open_socket(second, tokens(reader_two)) as ws_two,
    ):
        await emit(post_event(author, content="to everyone"))
        assert (await receive(ws_one))["post"]["content"] == "to everyone"
        assert (await receive(ws_two))["post"]["content"] == "to everyone"
        # Exactly once each, although both instances heard the event.
        await assert_nothing_queued(ws_one)
        await assert_nothing_queued(ws_two)


async def test_bad_events_on_the_channel_do_not_stop_delivery(
    realtime: RunningServer,
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    redis_client: Redis,
    emit: Emit,
) -> None:
    alice = make_user()
    async with open_socket(realtime, tokens(alice)) as ws:
        for junk in (b"not json", b"[]", b'{"type": "unknown"}', b'{"type": "notification"}'):
            await redis_client.publish(settings.events_channel, junk)
        await emit(Event(type="notification", payload={"id": "x"}, recipient_id="not-a-uuid"))
        await emit(Event(type="post.created", payload={"id": "x"}, author_id=None))
        await emit(notification_event(alice, actor_id=alice))
        assert (await receive(ws))["type"] == "notification"


async def test_subscriber_reconnects_after_losing_its_redis_connection(
    realtime: RunningServer,
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    redis_client: Redis,
    emit: Emit,
) -> None:
    alice = make_user()
    subscriber = realtime.app.runtime.parts.subscriber
    async with open_socket(realtime, tokens(alice)) as ws:
        assert subscriber.subscribed.is_set()
        clients = await redis_client.client_list(_type="pubsub")
        ours = [c["id"] for c in clients if c.get("db") == str(_db(settings))]
        assert ours
        for client_id in ours:
            await redis_client.client_kill_filter(_id=client_id)
        # Delivery resumes once a new subscription is back. Pub/sub is shared by every Redis
        # database (other test runs subscribe too, so NUMSUB proves nothing): wait for a new
        # pub/sub connection of this database that holds its subscription.
        async with asyncio.timeout(10):
            while True:
                clients = await redis_client.client_list(_type="pubsub")
                if any(
                    c.get("db") == str(_db(settings))
                    and c["id"] not in ours
                    and int(c.get("sub", 0)) >= 1
                    for c in clients
                ):
                    break
                await asyncio.sleep(0.05)
        await emit(notification_event(alice, actor_id=alice))
        assert (await receive(ws))["type"] == "notification"


def _db(settings: Settings) -> int:
    return int(settings.require_redis_url().rsplit("/", 1)[1])
