"""``EXPLAIN (ANALYZE, BUFFERS)`` of the three paginated reads at the seeded scale.

Seeds a scratch database as ``make loadtest`` does (10,000 users, 100,000 posts, 20 follows
each, 5 celebrities followed by a third of everyone), adds likes and their notifications and
one follow notification per follow, then explains, for the worst-placed reader of each query,
the first page and a page 200 rows deep:

- the home feed of a reader following 2,000 accounts (the most followees), of readers
  following 1,000, 300 and 100, and of a typical one (~25): each with both of the feed's
  plans (merge per followee, walk of recent posts; ``timeline_repository``) and the plan the
  threshold picks, with a summary table of execution times at the end;
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
from typing import Any
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

# Readers following this many accounts (besides their seeded ~20), to place the threshold.
HEAVY_READERS = {7: 2000, 8: 1000, 9: 300, 10: 100}
_HEAVY_READER = """
INSERT INTO follows (follower_id, followee_id)
SELECT heavy.id, u.id
FROM (SELECT id FROM users ORDER BY id OFFSET %(offset)s LIMIT 1) AS heavy
CROSS JOIN LATERAL (SELECT id FROM users WHERE id <> heavy.id ORDER BY random() LIMIT %(n)s) AS u
ON CONFLICT DO NOTHING
"""
_EXTRA_DATA = """
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


# The feed's plans, pinned through its threshold parameter.
FEED_PLANS = {"merge": 10**9, "walk": 0, "auto": sql.HEAVY_READER_FOLLOWEES}
_READER_BY_OFFSET = "SELECT id FROM users ORDER BY id OFFSET %(offset)s LIMIT 1"
_TYPICAL_READER = """
    SELECT follower_id FROM follows GROUP BY follower_id
    HAVING count(*) BETWEEN 20 AND 30 ORDER BY follower_id LIMIT 1"""
_FOLLOWEES = "SELECT count(*) FROM follows WHERE follower_id = %(who)s"


def _args(
    name: str, who: str, cursor: tuple[object, object] | None, threshold: int = 0
) -> list[object]:
    bound: list[object] = list(cursor) if cursor else [None, None]
    if name == "feed":
        return [who, *bound, LIMIT, threshold]
    if name == "user posts":
        return [who, who, *bound, LIMIT]
    return [who, *bound, LIMIT]


def _explain(
    conn: psycopg.Connection[tuple[Any, ...]], statement: str, args: list[object]
) -> tuple[list[str], float]:
    """The plan's lines and its execution time in ms."""
    values = pgsql.SQL(", ").join(pgsql.Literal(value) for value in args)
    explain = pgsql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE {} ({})").format(
        pgsql.Identifier(statement), values
    )
    lines = [row[0] for row in conn.execute(explain).fetchall()]
    timing = next(line for line in lines if line.startswith("Execution Time:"))
    return lines, float(timing.split()[2])


def _explain_all(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    queries = {
        "feed": sql._FEED,
        "user posts": sql._USER_POSTS,
        "notifications": sql._NOTIFICATIONS,
    }
    summary: list[str] = []
    for index, (name, text) in enumerate(queries.items()):
        conn.execute(f"PREPARE q{index} AS {text}")
        if name == "feed":
            readers = [str(conn.execute(_TYPICAL_READER).fetchone()[0])]  # type: ignore[index]
            readers += [
                str(conn.execute(_READER_BY_OFFSET, {"offset": o}).fetchone()[0])  # type: ignore[index]
                for o in HEAVY_READERS
            ]
            plans = FEED_PLANS
        else:
            readers = [str(conn.execute(_WORST[name]).fetchone()[0])]  # type: ignore[index]
            plans = {"": 0}
        for who in readers:
            deep = conn.execute(_DEEP_CURSOR[name], {"who": who, "deep": DEEP}).fetchone()
            followees = conn.execute(_FOLLOWEES, {"who": who}).fetchone()[0]  # type: ignore[index]
            for plan, threshold in plans.items():
                for page, cursor in (("first page", None), (f"page at row {DEEP}", deep)):
                    args = _args(name, who, cursor, threshold)
                    lines, ms = _explain(conn, f"q{index}", args)
                    label = f"{name} {plan}".strip()
                    summary.append(f"| {label} | {followees} | {page} | {ms:.2f} ms |")
                    if name != "feed" or who in readers[:2]:
                        print(
                            f"\n### {label}, reader following {followees}, {page} (generic plan)\n"
                        )
                        print("\n".join(lines))
    print("\n| query, plan | reader's followees | page | execution |\n|---|---:|---|---:|")
    print("\n".join(summary))


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
            for offset, n in HEAVY_READERS.items():
                conn.execute(_HEAVY_READER, {"offset": offset, "n": n})
            conn.execute(_EXTRA_DATA)
            counts = {
                table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]  # noqa: S608  # the names are the literals below
                for table in ("users", "follows", "posts", "likes", "notifications")
            }
            print("\nseeded:", ", ".join(f"{n:,} {table}" for table, n in counts.items()))
            conn.execute("SET plan_cache_mode = force_generic_plan")
            _explain_all(conn)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
