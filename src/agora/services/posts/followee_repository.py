"""SQL for the feed cache: whom a reader follows (the authors a cached first page depends on)."""

from __future__ import annotations

import uuid

from agora.services.posts.repository import Conn

_FOLLOWEES = "SELECT followee_id FROM follows WHERE follower_id = $1 LIMIT $2"


async def followee_ids(conn: Conn, *, follower_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
    """Up to ``limit`` followees of ``follower_id`` (the caller asks one more to detect excess)."""
    records = await conn.fetch(_FOLLOWEES, follower_id, limit)
    return [record["followee_id"] for record in records]
