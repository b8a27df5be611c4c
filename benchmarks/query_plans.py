"""``EXPLAIN (ANALYZE, BUFFERS)`` of the three paginated reads at the seeded scale.

Seeds a scratch database as ``make loadtest`` does (10,000 users, 100,000 posts, 20 follows
each, 5 celebrities followed by a third of everyone), adds likes and their notifications and
one follow notification per follow, then explains, for the worst-placed reader of each query,
the first page and a page 200 rows deep:

- the home feed of a reader following 2,000 accounts (the most followees);
- the user-posts page of the author with the most posts;
- the notifications of the most-followed celebrity (the most notifications).

Statements run prepared with ``plan_cache_mode = force_generic_plan``: after five executions
asyncpg's prepared statements use the generic plan, so that is the plan production runs.
Uses AGORA_DATABASE_URL's server when set (a scratch database ``agora_plans`` beside it), else
the machine's PostgreSQL on 127.0.0.1. Environment: PLANS_USERS, PLANS_POSTS.
"""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql
from rich.progress import Progress

from agora.config import Settings
from agora.db.migrate import upgrade_to_head
from agora.devstack.seed import seed
from agora.services.posts import timeline_repository as sql

USERS = int(os.environ.get("PLANS_USERS", "10000"))
POSTS = int(os.environ.get("PLANS_POSTS", "100000"))
SCRATCH = "agora_plans"
LIMIT = 20
DEEP = 200

_EXTRA_DATA = """
-- One heavy reader following 2,000 accounts: the feed's worst case (followees x limit rows).
INSERT INTO follows (follower_id, followee_id)
SELECT heavy.id, u.id
FROM (SELECT id FROM users ORDER BY id OFFSET 7 LIMIT 1) AS heavy
CROSS JOIN LATERAL (SELECT id FROM users WHERE id <> heavy.id ORDER BY random() LIMIT 2000) AS u
ON CONFLICT DO NOTHING;
INSERT INTO likes (post_id, user_id, created_at)
SELECT p.id, u.id, p.created_at + interval '1 minute'
FROM (SELECT id, created_at FROM posts ORDER BY random() LIMIT 30000) AS p
CROSS JOIN LATERAL (SELECT id FROM users ORDER BY random() LIMIT 5) AS u
WHERE u.id <> (SELECT author_id FROM posts WHERE posts.id = p.id)
ON CONFLICT DO NOTHING;
UPDATE posts SET like_count = counted.n
FROM (SELECT post_id, count(*) AS n FROM likes GROUP BY post_id) AS counted
WHERE posts.id = counted.post_id;
INSERT INTO notifications (recipient_id, kind, actor_id, post_id, created_at)
SELECT p.author_id, 'like', l.user_id, l.post_id, l.created_at
FROM likes l JOIN posts p ON p.id = l.post_id;
INSERT INTO notifications (recipient_id, kind, actor_id, created_at)
SELECT followee_id, 'follow', follower_id, now() - random() * interval '7 days' FROM follows;
ANALYZE;
"""

_WORST = {
    "feed": "SELECT follower_id FROM follows GROUP BY follower_id ORDER BY count(*) DESC LIMIT 1",
    "user posts": "SELECT author_id FROM posts GROUP BY author_id ORDER BY count(*) DESC LIMIT 1",
    "notifications": (
        "SELECT recipient_id FROM notifications GROUP BY recipient_id "
        "ORDER BY count(*) DESC LIMIT 1"
    ),
}

# The deep page's cursor: the (created_at, id) of row DEEP in the query's own order.
_DEEP_CURSOR = {
    "feed": """
        SELECT p.created_at, p.id FROM posts p
        WHERE p.author_id IN (SELECT followee_id FROM follows WHERE follower_id = %(who)s
                              UNION ALL SELECT %(who)s)
        ORDER BY p.created_at DESC, p.id DESC OFFSET %(deep)s LIMIT 1""",
    "user posts": """
        SELECT created_at, id FROM posts WHERE author_id = %(who)s
        ORDER BY created_at DESC, id DESC OFFSET %(deep)s LIMIT 1""",
    "notifications": """
        SELECT created_at, id FROM notifications WHERE recipient_id = %(who)s
        ORDER BY created_at DESC, id DESC OFFSET %(deep)s LIMIT 1""",
}


def _args(name: str, who: str, cursor: tuple[object, object] | None) -> list[object]:
    bound: list[object] = list(cursor) if cursor else [None, None]
    if name == "feed":
        return [who, *bound, LIMIT]
    if name == "user posts":
        return [who, who, *bound, LIMIT]
    return [who, *bound, LIMIT]


def _scratch_url() -> tuple[str, str]:
    base = os.environ.get("AGORA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    parts = urlsplit(base)
    admin = urlunsplit(parts._replace(path="/postgres"))
    return admin, urlunsplit(parts._replace(path=f"/{SCRATCH}"))


def main() -> int:
    admin, url = _scratch_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SCRATCH}")
    try:
        upgrade_to_head(url)
        settings = Settings(
            database_url=url,
            password_hash_time_cost=1,
            password_hash_memory_kib=8192,
            password_hash_parallelism=1,
        )
        with Progress() as progress:
            asyncio.run(
                seed(
                    settings,
                    users=USERS,
                    posts=POSTS,
                    follows_per_user=20,
                    celebrities=5,
                    progress=progress,
                )
            )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(_EXTRA_DATA)
            counts = {
                table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]  # noqa: S608  # the names are the literals below
                for table in ("users", "follows", "posts", "likes", "notifications")
            }
            print("\nseeded:", ", ".join(f"{n:,} {table}" for table, n in counts.items()))
            conn.execute("SET plan_cache_mode = force_generic_plan")
            queries = {
                "feed": sql._FEED,
                "user posts": sql._USER_POSTS,
                "notifications": sql._NOTIFICATIONS,
            }
            for index, (name, text) in enumerate(queries.items()):
                who = str(conn.execute(_WORST[name]).fetchone()[0])  # type: ignore[index]
                deep = conn.execute(_DEEP_CURSOR[name], {"who": who, "deep": DEEP}).fetchone()
                conn.execute(f"PREPARE q{index} AS {text}")
                for page, cursor in (("first page", None), (f"page at row {DEEP}", deep)):
                    values = pgsql.SQL(", ").join(
                        pgsql.Literal(value) for value in _args(name, who, cursor)
                    )
                    explain = pgsql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE {} ({})").format(
                        pgsql.Identifier(f"q{index}"), values
                    )
                    plan = conn.execute(explain).fetchall()
                    print(f"\n### {name}, {page} (generic plan)\n")
                    print("\n".join(row[0] for row in plan))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
