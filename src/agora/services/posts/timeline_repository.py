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


# Readers with at least this many followees get the walk below instead of the merge: the
# merge reads up to `limit` rows per followee (2,000 followees: 2,015 index probes and ~20,000
# rows for a page of 20, ~117 ms), the walk reads recent posts until `limit` of them are by
# followees. Chosen from `python -m benchmarks.query_plans` (docs/performance.md).
HEAVY_READER_FOLLOWEES = 200

# One statement, two plans, gated by a bounded count of the reader's followees: the branch
# whose gate is false is skipped by its one-time filter, so a page costs one round trip
# whichever plan serves it. Both branches return the same rows in the same order (ties on
# created_at broken by id), so a reader crossing the threshold mid-scroll keeps its cursor.
#
# The merge: each followee contributes at most one page of rows from the
# (author_id, created_at DESC, id DESC) index, so the cost is bounded by followees x limit,
# not by how many posts they ever wrote.
# The walk: one pass over (created_at DESC, id DESC), keeping rows whose author is the
# reader or in a hash of its followees, stopping at `limit`; its cost is limit / (the
# followees' share of recent posts), which is small exactly when followees are many.
# liked_by_me is computed for the final page only.
_FEED = """
WITH heavy AS MATERIALIZED (
    SELECT count(*) >= $5 AS walk
    FROM (SELECT 1 FROM follows WHERE follower_id = $1::uuid LIMIT $5) AS bounded
),
page AS (
    (
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
        WHERE NOT (SELECT walk FROM heavy)
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT $4
    )
    UNION ALL
    (
        SELECT p.id, p.author_id, p.content, p.like_count, p.created_at
        FROM posts p
        WHERE (SELECT walk FROM heavy)
          AND (p.created_at, p.id) < (
              COALESCE($2::timestamptz, 'infinity'),
              COALESCE($3::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
          )
          AND (p.author_id = $1::uuid
               OR p.author_id IN (SELECT followee_id FROM follows WHERE follower_id = $1::uuid))
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT $4
    )
)
SELECT page.*,
       EXISTS (SELECT 1 FROM likes l WHERE l.post_id = page.id AND l.user_id = $1)
           AS liked_by_me
FROM page
ORDER BY page.created_at DESC, page.id DESC
"""


async def feed_page(
    conn: Conn,
    *,
    reader_id: uuid.UUID,
    cursor: Cursor | None,
    limit: int,
    heavy_reader_followees: int = HEAVY_READER_FOLLOWEES,
) -> list[PostRow]:
    """One page of the home feed; ``heavy_reader_followees`` picks the plan (tests and the
    benchmark pin one: 0 always walks, a huge value always merges)."""
    records = await conn.fetch(
        _FEED, reader_id, *_cursor_args(cursor), limit, heavy_reader_followees
    )
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
