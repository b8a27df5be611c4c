"""SQL of the posts service's writes and single reads (keyset pages: timeline_repository).

Each write is a single statement (data-modifying CTEs), so it is atomic without an explicit
transaction and costs one round trip; counters change in the same statement as the row that
justifies them, and only when that row really changed, so repeats are no-ops and
``like_count`` stays exact under concurrency. All SQL is parameterised.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

import asyncpg

from agora.db import Connection

Conn: TypeAlias = Connection  # the name the posts repositories share


class MissingReference(Exception):
    """A foreign key failed: a row this write refers to was deleted meanwhile."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


@dataclass(frozen=True, slots=True)
class PostRow:
    id: uuid.UUID
    author_id: uuid.UUID
    content: str
    like_count: int
    liked_by_me: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: uuid.UUID
    recipient_id: uuid.UUID
    kind: Literal["follow", "like"]
    actor_id: uuid.UUID
    post_id: uuid.UUID | None
    created_at: datetime
    read: bool


@dataclass(frozen=True, slots=True)
class LikeResult:
    post: PostRow
    changed: bool
    notification: NotificationRow | None


@dataclass(frozen=True, slots=True)
class FollowResult:
    found: bool
    changed: bool
    notification: NotificationRow | None


DeleteOutcome = Literal["deleted", "forbidden", "not_found"]


def post_row(record: asyncpg.Record, *, liked_by_me: bool | None = None) -> PostRow:
    return PostRow(
        id=record["id"],
        author_id=record["author_id"],
        content=record["content"],
        like_count=record["like_count"],
        liked_by_me=record["liked_by_me"] if liked_by_me is None else liked_by_me,
        created_at=record["created_at"],
    )


def notification_row(record: asyncpg.Record, prefix: str = "") -> NotificationRow:
    """A row of ``notifications`` (its columns optionally prefixed, as in a joined result)."""
    return NotificationRow(
        id=record[f"{prefix}id"],
        recipient_id=record[f"{prefix}recipient_id"],
        kind=record[f"{prefix}kind"],
        actor_id=record[f"{prefix}actor_id"],
        post_id=record[f"{prefix}post_id"],
        created_at=record[f"{prefix}created_at"],
        read=record.get(f"{prefix}read", False),
    )


async def _write(conn: Conn, query: str, *args: object) -> asyncpg.Record | None:
    try:
        return await conn.fetchrow(query, *args)
    except asyncpg.ForeignKeyViolationError as exc:
        raise MissingReference(exc.constraint_name or "") from exc


def _one(record: asyncpg.Record | None) -> asyncpg.Record:
    """The row of a statement that always returns one (an INSERT's RETURNING, a SELECT of
    EXISTS): none means the statement is not the one this module wrote."""
    if record is None:
        raise RuntimeError("the statement returned no row")
    return record


_INSERT_POST = """
INSERT INTO posts (author_id, content) VALUES ($1, $2)
RETURNING id, author_id, content, like_count, created_at
"""


async def insert_post(conn: Conn, *, author_id: uuid.UUID, content: str) -> PostRow:
    record = _one(await _write(conn, _INSERT_POST, author_id, content))
    return post_row(record, liked_by_me=False)


_GET_POST = """
SELECT p.id, p.author_id, p.content, p.like_count, p.created_at,
       EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.id AND l.user_id = $2) AS liked_by_me
FROM posts p
WHERE p.id = $1
"""


async def get_post(conn: Conn, *, post_id: uuid.UUID, viewer_id: uuid.UUID) -> PostRow | None:
    record = await conn.fetchrow(_GET_POST, post_id, viewer_id)
    return None if record is None else post_row(record)


# The outer SELECT reads the snapshot from before the DELETE, so it still sees the author.
_DELETE_POST = """
WITH removed AS (
    DELETE FROM posts WHERE id = $1 AND author_id = $2 RETURNING id
)
SELECT EXISTS (SELECT 1 FROM removed) AS deleted,
       (SELECT author_id FROM posts WHERE id = $1) AS author_id
"""


async def delete_post(conn: Conn, *, post_id: uuid.UUID, author_id: uuid.UUID) -> DeleteOutcome:
    record = _one(await conn.fetchrow(_DELETE_POST, post_id, author_id))
    if record["deleted"]:
        return "deleted"
    # The author's own post that is already gone (a concurrent delete) is simply not found.
    if record["author_id"] is None or record["author_id"] == author_id:
        return "not_found"
    return "forbidden"


_LIKE = """
WITH target AS (
    SELECT id, author_id, content, like_count, created_at FROM posts WHERE id = $1
), liked AS (
    INSERT INTO likes (post_id, user_id) SELECT id, $2 FROM target
    ON CONFLICT DO NOTHING
    RETURNING post_id
), counted AS (
    UPDATE posts SET like_count = like_count + 1
    WHERE id IN (SELECT post_id FROM liked)
    RETURNING like_count
), notified AS (
    INSERT INTO notifications (recipient_id, kind, actor_id, post_id)
    SELECT t.author_id, 'like', $2, t.id FROM target t
    WHERE t.author_id <> $2 AND EXISTS (SELECT 1 FROM liked)
    ON CONFLICT DO NOTHING
    RETURNING id, recipient_id, kind, actor_id, post_id, created_at
)
SELECT t.id, t.author_id, t.content, t.created_at,
       COALESCE((SELECT like_count FROM counted), t.like_count) AS like_count,
       EXISTS (SELECT 1 FROM liked) AS changed,
       n.id AS n_id, n.recipient_id AS n_recipient_id, n.kind AS n_kind,
       n.actor_id AS n_actor_id, n.post_id AS n_post_id, n.created_at AS n_created_at
FROM target t
LEFT JOIN notified n ON true
"""

_UNLIKE = """
WITH target AS (
    SELECT id, author_id, content, like_count, created_at FROM posts WHERE id = $1
), unliked AS (
    DELETE FROM likes WHERE post_id = $1 AND user_id = $2 RETURNING post_id
), counted AS (
    UPDATE posts SET like_count = like_count - 1
    WHERE id IN (SELECT post_id FROM unliked)
    RETURNING like_count
)
SELECT t.id, t.author_id, t.content, t.created_at,
       COALESCE((SELECT like_count FROM counted), t.like_count) AS like_count,
       EXISTS (SELECT 1 FROM unliked) AS changed
FROM target t
"""

_CURRENT_LIKE_COUNT = "SELECT like_count FROM posts WHERE id = $1"


async def set_like(
    conn: Conn, *, post_id: uuid.UUID, user_id: uuid.UUID, liked: bool
) -> LikeResult | None:
    """Like or unlike; None when the post does not exist."""
    record = await _write(conn, _LIKE if liked else _UNLIKE, post_id, user_id)
    if record is None:
        return None
    post = post_row(record, liked_by_me=liked)
    changed: bool = record["changed"]
    if not changed:
        # A no-op may have waited for a concurrent like of the same user; its statement
        # snapshot predates that commit, so read the count again to answer with the current one.
        current = await conn.fetchval(_CURRENT_LIKE_COUNT, post_id)
        if current is None:
            return None
        post = dataclasses.replace(post, like_count=current)
    notification = None
    if liked and record["n_id"] is not None:
        notification = notification_row(record, prefix="n_")
    return LikeResult(post=post, changed=changed, notification=notification)


_FOLLOW = """
WITH target AS (
    SELECT id FROM users WHERE id = $2
), followed AS (
    INSERT INTO follows (follower_id, followee_id) SELECT $1, id FROM target
    ON CONFLICT DO NOTHING
    RETURNING followee_id
), notified AS (
    INSERT INTO notifications (recipient_id, kind, actor_id)
    SELECT followee_id, 'follow', $1 FROM followed
    ON CONFLICT DO NOTHING
    RETURNING id, recipient_id, kind, actor_id, post_id, created_at
)
SELECT EXISTS (SELECT 1 FROM target) AS found,
       EXISTS (SELECT 1 FROM followed) AS changed,
       n.id AS n_id, n.recipient_id AS n_recipient_id, n.kind AS n_kind,
       n.actor_id AS n_actor_id, n.post_id AS n_post_id, n.created_at AS n_created_at
FROM (SELECT 1) AS one
LEFT JOIN notified n ON true
"""

_UNFOLLOW = """
WITH removed AS (
    DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM users WHERE id = $2) AS found,
       EXISTS (SELECT 1 FROM removed) AS changed
"""


async def set_follow(
    conn: Conn, *, follower_id: uuid.UUID, followee_id: uuid.UUID, following: bool
) -> FollowResult:
    record = _one(await _write(conn, _FOLLOW if following else _UNFOLLOW, follower_id, followee_id))
    notification = None
    if following and record["n_id"] is not None:
        notification = notification_row(record, prefix="n_")
    return FollowResult(found=record["found"], changed=record["changed"], notification=notification)
