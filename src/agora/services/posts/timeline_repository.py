"""SQL of the keyset-paginated lists: home feed, one user's posts, notifications.

Each page is one query, ``liked_by_me`` included, whatever its size. Bounds read
``(created_at, id) < (COALESCE($n, 'infinity'), COALESCE($m, <max uuid>))``: the first page
passes NULLs and starts after the newest possible key, so one query text serves every page and
its prepared statement's generic plan still uses the index.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from agora.services.posts.pagination import Cursor
from agora.services.posts.repository import (
    Conn,
    NotificationRow,
    PostRow,
    notification_row,
    post_row,
)


def _cursor_args(cursor: Cursor | None) -> tuple[datetime | None, uuid.UUID | None]:
    return (None, None) if cursor is None else (cursor.created_at, cursor.id)


# Fan-out on read, merged per author: each followee contributes at most one page of rows
# from the (author_id, created_at DESC, id DESC) index, so the cost is bounded by
# followees x limit, not by how many posts they ever wrote. liked_by_me is computed for the
# final page only.
_FEED = """
WITH page AS (
    SELECT p.id, p.author_id, p.content, p.like_count, p.created_at
    FROM (
        SELECT followee_id AS user_id FROM follows WHERE follower_id = $1::uuid
        UNION ALL
        SELECT $1::uuid
    ) AS authors
    CROSS JOIN LATERAL (
        SELECT id, author_id, content, like_count, created_at
        FROM posts
        WHERE author_id = authors.user_id
          AND (created_at, id) < (
              COALESCE($2::timestamptz, 'infinity'),
              COALESCE($3::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
          )
        ORDER BY created_at DESC, id DESC
        LIMIT $4
    ) AS p
    ORDER BY p.created_at DESC, p.id DESC
    LIMIT $4
)
SELECT page.*,
       EXISTS (SELECT 1 FROM likes l WHERE l.post_id = page.id AND l.user_id = $1)
           AS liked_by_me
FROM page
ORDER BY page.created_at DESC, page.id DESC
"""


async def feed_page(
    conn: Conn, *, reader_id: uuid.UUID, cursor: Cursor | None, limit: int
) -> list[PostRow]:
    records = await conn.fetch(_FEED, reader_id, *_cursor_args(cursor), limit)
    return [post_row(record) for record in records]


# Zero rows: no such user. One row of NULLs: the user exists but has no (more) posts.
_USER_POSTS = """
SELECT p.id, p.author_id, p.content, p.like_count, p.created_at,
       EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.id AND l.user_id = $1)
           AS liked_by_me
FROM users u
LEFT JOIN LATERAL (
    SELECT id, author_id, content, like_count, created_at
    FROM posts
    WHERE author_id = u.id
      AND (created_at, id) < (
          COALESCE($3::timestamptz, 'infinity'),
          COALESCE($4::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
      )
    ORDER BY created_at DESC, id DESC
    LIMIT $5
) AS p ON true
WHERE u.id = $2
ORDER BY p.created_at DESC, p.id DESC
"""


async def user_posts_page(
    conn: Conn,
    *,
    viewer_id: uuid.UUID,
    author_id: uuid.UUID,
    cursor: Cursor | None,
    limit: int,
) -> list[PostRow] | None:
    """One page of an author's posts, or None when the author does not exist."""
    records = await conn.fetch(_USER_POSTS, viewer_id, author_id, *_cursor_args(cursor), limit)
    if not records:
        return None
    return [post_row(record) for record in records if record["id"] is not None]


_NOTIFICATIONS = """
SELECT id, recipient_id, kind, actor_id, post_id, created_at, read_at IS NOT NULL AS read
FROM notifications
WHERE recipient_id = $1
  AND (created_at, id) < (
      COALESCE($2::timestamptz, 'infinity'),
      COALESCE($3::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
  )
ORDER BY created_at DESC, id DESC
LIMIT $4
"""


async def notifications_page(
    conn: Conn, *, recipient_id: uuid.UUID, cursor: Cursor | None, limit: int
) -> list[NotificationRow]:
    records = await conn.fetch(_NOTIFICATIONS, recipient_id, *_cursor_args(cursor), limit)
    return [notification_row(record) for record in records]
