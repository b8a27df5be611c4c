"""`agora seed`: demo data in bulk (COPY), for trying the system and for load tests.

The follow graph is what load tests need: every user follows a few random others, and a few
"celebrities" (the first users) are each followed by about a third of everyone, so one of
their posts fans out to thousands of feeds and sockets.

Every seeded user has the same password, hashed once: hashing per user would take minutes
for a few thousand users and teach nothing.
"""

from __future__ import annotations

import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from argon2 import PasswordHasher
from rich.progress import Progress

from agora.config import Settings
from agora.db import Connection
from agora.db.pool import asyncpg_dsn

SEED_PASSWORD = "agora-seed-password"  # noqa: S105  # nosec B105 # published demo credential
BATCH = 20_000  # rows per COPY: few round trips, bounded memory
WORDS = [
    "agora",
    "market",
    "forum",
    "debate",
    "river",
    "stone",
    "light",
    "morning",
    "city",
    "garden",
    "music",
    "coffee",
    "rain",
    "bridge",
    "signal",
    "harbor",
    "lantern",
    "meadow",
    "orbit",
    "pixel",
    "quiet",
    "rocket",
    "summit",
    "thunder",
    "voyage",
]


CELEBRITY_REACH = 3  # a celebrity is followed by one user in this many


@dataclass(frozen=True)
class SeedResult:
    users: int
    follows: int
    posts: int
    username_prefix: str


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))).capitalize() + "."


def follow_graph(
    user_ids: list[uuid.UUID], follows_per_user: int, celebrities: int, rng: random.Random
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(follower, followee) pairs without duplicates or self-follows: ``follows_per_user``
    random followees each, plus the first ``celebrities`` users for one user in
    ``CELEBRITY_REACH``."""
    users = len(user_ids)
    famous = user_ids[: min(celebrities, users)]
    count = min(follows_per_user, max(0, users - 1))
    pairs: list[tuple[uuid.UUID, uuid.UUID]] = []
    for index, follower in enumerate(user_ids):
        chosen = {u for u in famous if u != follower} if index % CELEBRITY_REACH == 0 else set()
        wanted = len(chosen) + count
        while len(chosen) < min(wanted, users - 1):
            candidate = user_ids[rng.randrange(users)]
            if candidate != follower:
                chosen.add(candidate)
        pairs.extend((follower, followee) for followee in chosen)
    return pairs


async def _copy(
    conn: Connection,
    table: str,
    columns: list[str],
    records: list[tuple[object, ...]],
    *,
    progress: Progress,
) -> None:
    task = progress.add_task(table, total=len(records))
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        await conn.copy_records_to_table(table, records=batch, columns=columns)
        progress.advance(task, len(batch))


async def seed(
    settings: Settings,
    *,
    users: int,
    posts: int,
    follows_per_user: int,
    progress: Progress,
    celebrities: int = 0,
) -> SeedResult:
    rng = random.Random()  # noqa: S311  # nosec B311 # demo data, not security
    prefix = f"seed_{secrets.token_hex(3)}"
    hasher = PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    password_hash = hasher.hash(SEED_PASSWORD)
    user_ids = [uuid.uuid4() for _ in range(users)]
    user_rows: list[tuple[object, ...]] = [
        (uid, f"{prefix}_{i}", f"{prefix}_{i}@example.com", password_hash, f"Seed User {i}")
        for i, uid in enumerate(user_ids)
    ]
    follows: list[tuple[object, ...]] = list(
        follow_graph(user_ids, follows_per_user, celebrities, rng)
    )
    now = datetime.now(UTC)
    post_rows: list[tuple[object, ...]] = [
        (
            uuid.uuid4(),
            rng.choice(user_ids),
            _sentence(rng),
            now - timedelta(seconds=rng.randint(0, 7 * 24 * 3600)),
        )
        for _ in range(posts)
    ]
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    try:
        # One transaction: an interrupted seed leaves nothing half-made behind.
        async with conn.transaction():
            columns = ["id", "username", "email", "password_hash", "display_name"]
            await _copy(conn, "users", columns, user_rows, progress=progress)
            columns = ["follower_id", "followee_id"]
            await _copy(conn, "follows", columns, follows, progress=progress)
            columns = ["id", "author_id", "content", "created_at"]
            await _copy(conn, "posts", columns, post_rows, progress=progress)
        await conn.execute("ANALYZE users, follows, posts")
    finally:
        await conn.close()
    return SeedResult(users=users, follows=len(follows), posts=posts, username_prefix=prefix)
