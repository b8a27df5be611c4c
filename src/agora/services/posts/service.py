"""Posts, likes, follows, feeds and notifications: the domain rules of the posts service.

Writes commit first; only then are events published, and a publish that fails or is slow is
logged and dropped - the write is durable and the recipient still finds it in the feed or in
notifications.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from agora.cache import CacheService, Loaded
from agora.cache.service import Loader
from agora.config import Settings
from agora.db import Database
from agora.errors import ApiError, Forbidden, NotFound, Unauthenticated, Unprocessable
from agora.events import Event, publish
from agora.flags import FeatureFlags
from agora.flags.catalog import NOTIFICATION_LIKE_COUNT
from agora.ids import canonical_uuid, parse_uuid
from agora.observability.logging import get_logger
from agora.observability.metrics import FOLLOWS, LIKES, NOTIFICATIONS_SENT, POSTS_CREATED
from agora.redis.access import RedisAccess
from agora.security.tokens import Principal
from agora.services.posts import caching
from agora.services.posts import followee_repository as followees
from agora.services.posts import repository as repo
from agora.services.posts import timeline_repository as timelines
from agora.services.posts.pagination import Cursor, InvalidCursor, decode_cursor, encode_cursor
from agora.services.posts.schemas import (
    FollowState,
    NotificationPage,
    NotificationPublic,
    PostPage,
    PostPublic,
)

log = get_logger(__name__)

_Row = TypeVar("_Row", repo.PostRow, repo.NotificationRow)

# Foreign keys that point at the caller: when one fails, the caller's account is gone.
_CALLER_CONSTRAINTS = frozenset(
    {
        "posts_author_id_fkey",
        "likes_user_id_fkey",
        "follows_follower_id_fkey",
        "notifications_actor_id_fkey",
    }
)


def parse_id(value: str, what: str) -> uuid.UUID:
    """A path id; anything that is not a UUID names nothing, so it is a 404, not a 422."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound(f"{what} not found")
    return parsed


def caller_id(principal: Principal) -> uuid.UUID:
    parsed = parse_uuid(principal.user_id)
    if parsed is None:
        raise Unauthenticated("invalid token subject", code="invalid_token")
    return parsed


def _cursor(value: str | None) -> Cursor | None:
    if value is None:
        return None
    try:
        return decode_cursor(value)
    except InvalidCursor as exc:
        raise ApiError(str(exc), code="invalid_cursor", status_code=400) from None


def _missing(exc: repo.MissingReference, what: str) -> ApiError:
    if exc.constraint in _CALLER_CONSTRAINTS:
        return Unauthenticated("the account of this token no longer exists")
    return NotFound(f"{what} not found")


def post_public(row: repo.PostRow) -> PostPublic:
    return PostPublic(
        id=str(row.id),
        author_id=str(row.author_id),
        content=row.content,
        like_count=row.like_count,
        liked_by_me=row.liked_by_me,
        created_at=row.created_at,
    )


def notification_public(row: repo.NotificationRow) -> NotificationPublic:
    return NotificationPublic(
        id=str(row.id),
        kind=row.kind,
        actor_id=str(row.actor_id),
        post_id=None if row.post_id is None else str(row.post_id),
        created_at=row.created_at,
        read=row.read,
    )


class PostsService:
    def __init__(
        self,
        *,
        db: Database,
        redis: RedisAccess,
        cache: CacheService,
        settings: Settings,
        flags: FeatureFlags,
    ) -> None:
        self._db = db
        self._flags = flags
        self._redis = redis
        self._cache = cache
        self._settings = settings
        self._channel = settings.events_channel

    async def _emit(self, event: Event) -> None:
        await publish(self._redis, self._channel, event)

    async def _notify(
        self, row: repo.NotificationRow | None, *, post: repo.PostRow | None = None
    ) -> None:
        if row is None:
            return
        NOTIFICATIONS_SENT.inc()
        payload: dict[str, object] = {
            "notification": notification_public(row).model_dump(mode="json")
        }
        # Rolled out gradually (flag notification-like-count, sticky per recipient): the
        # author's client updates the post's counter without fetching it again.
        if post is not None and self._flags.enabled(
            NOTIFICATION_LIKE_COUNT, user_id=str(row.recipient_id)
        ):
            payload["post"] = {"id": str(post.id), "like_count": post.like_count}
        await self._emit(
            Event(type="notification", recipient_id=str(row.recipient_id), payload=payload)
        )

    async def create_post(self, *, principal: Principal, content: str) -> PostPublic:
        author = caller_id(principal)
        try:
            row = await self._db.run(
                lambda conn: repo.insert_post(conn, author_id=author, content=content),
                user_id=author,
                single_statement=True,
            )
        except repo.MissingReference as exc:
            raise _missing(exc, "user") from None
        POSTS_CREATED.inc()
        await self._cache.invalidate([caching.author_stamp(author), caching.post_stamp(row.id)])
        post = post_public(row)
        await self._emit(
            Event(
                type="post.created",
                author_id=post.author_id,
                payload={"post": post.model_dump(mode="json")},
            )
        )
        return post

    def _post_loader(self, target: uuid.UUID, viewer: uuid.UUID) -> Loader[PostPublic]:
        async def load(storing: bool) -> Loaded[PostPublic]:
            row = await self._db.run(
                lambda conn: repo.get_post(conn, post_id=target, viewer_id=viewer),
                read_only=not storing,  # a fill reads the primary (see cache.Loader)
                writes=False,  # ... and is still a read: the viewer stays on the replicas
                user_id=viewer,
            )
            if row is None:
                return Loaded(None, None)
            return Loaded(post_public(row), [caching.post_stamp(target)])

        return load

    async def get_post(self, *, principal: Principal, post_id: str) -> PostPublic:
        target, viewer = parse_id(post_id, "post"), caller_id(principal)
        post = await self._cache.get_or_load(
            "post",
            caching.post_key(target, viewer),
            PostPublic,
            self._post_loader(target, viewer),
            ttl_s=self._settings.cache_post_ttl_s,
        )
        if post is None:
            raise NotFound("post not found")
        return post

    def cached_post_json(self, *, principal: Principal, post_id: str) -> bytes | None:
        """``get_post``'s answer as the cache holds it (``PostPublic`` JSON), when the lookup
        sent ahead in this request found it fresh; None when ``get_post`` must answer (a miss,
        an id that names nothing, no lookup sent ahead)."""
        target, viewer = canonical_uuid(post_id), canonical_uuid(principal.user_id)
        if target is None or viewer is None:
            return None
        return self._cache.cached_json(
            "post",
            caching.post_key(target, viewer),
            lambda: self._post_loader(uuid.UUID(target), uuid.UUID(viewer)),
            ttl_s=self._settings.cache_post_ttl_s,
        )

    async def delete_post(self, *, principal: Principal, post_id: str) -> None:
        target, caller = parse_id(post_id, "post"), caller_id(principal)
        outcome = await self._db.run(
            lambda conn: repo.delete_post(conn, post_id=target, author_id=caller),
            user_id=caller,
            single_statement=True,
        )
        if outcome == "not_found":
            raise NotFound("post not found")
        if outcome == "forbidden":
            raise Forbidden("only the author can delete a post")
        await self._cache.invalidate([caching.post_stamp(target), caching.author_stamp(caller)])

    async def set_like(self, *, principal: Principal, post_id: str, liked: bool) -> PostPublic:
        target, caller = parse_id(post_id, "post"), caller_id(principal)
        try:
            async with self._db.connection(user_id=caller) as conn:
                result = await repo.set_like(conn, post_id=target, user_id=caller, liked=liked)
        except repo.MissingReference as exc:
            raise _missing(exc, "post") from None
        if result is None:
            raise NotFound("post not found")
        if result.changed:
            await self._cache.invalidate([caching.post_stamp(target)])
        if liked and result.changed:
            LIKES.inc()
        await self._notify(result.notification, post=result.post)
        return post_public(result.post)

    async def set_follow(
        self, *, principal: Principal, user_id: str, following: bool
    ) -> FollowState:
        followee = parse_id(user_id, "user")
        follower = caller_id(principal)
        if followee == follower:
            raise Unprocessable("you cannot follow yourself", code="cannot_follow_self")
        try:
            result = await self._db.run(
                lambda conn: repo.set_follow(
                    conn, follower_id=follower, followee_id=followee, following=following
                ),
                user_id=follower,
                single_statement=True,
            )
        except repo.MissingReference as exc:
            raise _missing(exc, "user") from None
        if not result.found:
            raise NotFound("user not found")
        if result.changed:
            await self._cache.invalidate([caching.follows_stamp(follower)])
        if following and result.changed:
            FOLLOWS.inc()
        await self._notify(result.notification)
        return FollowState(user_id=str(followee), following=following)

    async def feed(self, *, principal: Principal, limit: int, cursor: str | None) -> PostPage:
        reader, position = caller_id(principal), _cursor(cursor)
        most = self._settings.cache_feed_max_followees

        async def load(storing: bool) -> Loaded[PostPage]:
            async def read(conn: repo.Conn) -> tuple[list[uuid.UUID] | None, list[repo.PostRow]]:
                authors = None
                if storing and position is None:
                    authors = await followees.followee_ids(conn, follower_id=reader, limit=most + 1)
                rows = await timelines.feed_page(
                    conn, reader_id=reader, cursor=position, limit=limit + 1
                )
                return authors, rows

            authors, rows = await self._db.run(
                read, read_only=not storing, writes=False, user_id=reader
            )
            page = _post_page(rows, limit)
            if not storing or (authors is not None and len(authors) > most):
                return Loaded(page, None)  # checking that many stamps costs more than a query
            item_ids = [item.id for item in page.items]
            return Loaded(page, caching.feed_stamps(reader, item_ids, authors))

        page = await self._cache.get_or_load(
            "feed",
            caching.feed_key(reader, limit, cursor),
            PostPage,
            load,
            ttl_s=self._settings.cache_feed_ttl_s,
        )
        assert page is not None  # a feed always loads (possibly empty)
        return page

    async def user_posts(
        self, *, principal: Principal, user_id: str, limit: int, cursor: str | None
    ) -> PostPage:
        author, viewer, position = parse_id(user_id, "user"), caller_id(principal), _cursor(cursor)
        rows = await self._db.run(
            lambda conn: timelines.user_posts_page(
                conn, viewer_id=viewer, author_id=author, cursor=position, limit=limit + 1
            ),
            read_only=True,
            user_id=viewer,
        )
        if rows is None:
            raise NotFound("user not found")
        return _post_page(rows, limit)

    async def notifications(
        self, *, principal: Principal, limit: int, cursor: str | None
    ) -> NotificationPage:
        recipient, position = caller_id(principal), _cursor(cursor)
        rows = await self._db.run(
            lambda conn: timelines.notifications_page(
                conn, recipient_id=recipient, cursor=position, limit=limit + 1
            ),
            read_only=True,
            user_id=recipient,
        )
        page, next_cursor = _split_page(rows, limit)
        return NotificationPage(
            items=[notification_public(row) for row in page], next_cursor=next_cursor
        )


def _split_page(rows: list[_Row], limit: int) -> tuple[list[_Row], str | None]:
    """``rows`` holds up to ``limit + 1`` items: the extra one only says a next page exists."""
    page = rows[:limit]
    if len(rows) > limit:
        return page, encode_cursor(page[-1].created_at, page[-1].id)
    return page, None


def _post_page(rows: list[repo.PostRow], limit: int) -> PostPage:
    page, next_cursor = _split_page(rows, limit)
    return PostPage(items=[post_public(row) for row in page], next_cursor=next_cursor)
