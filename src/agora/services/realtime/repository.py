"""All SQL of the realtime service: who among my connected users follows an author, and
whether one user follows another (presence visibility)."""

from __future__ import annotations

from collections.abc import Sequence

from agora.db import Connection

_ONLINE_FOLLOWERS = """
SELECT follower_id::text
FROM follows
WHERE followee_id = $1::uuid AND follower_id = ANY($2::uuid[])
"""


async def online_followers(
    conn: Connection, *, author_id: str, candidate_ids: Sequence[str]
) -> list[str]:
    """The subset of ``candidate_ids`` (users connected to this instance) following ``author_id``.

    Restricting the query to the locally connected users keeps it proportional to this
    instance's sockets, not to the author's follower count (which may be millions)."""
    rows = await conn.fetch(_ONLINE_FOLLOWERS, author_id, list(candidate_ids))
    return [row[0] for row in rows]


async def follows(conn: Connection, *, follower_id: str, followee_id: str) -> bool:
    """One primary-key lookup."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1::uuid "
        "AND followee_id = $2::uuid)",
        follower_id,
        followee_id,
    )
    return bool(found)
