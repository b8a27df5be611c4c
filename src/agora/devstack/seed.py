"""`agora seed`: demo data in bulk (COPY), for trying the system and for load tests.

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
from agora.db.pool import asyncpg_dsn

SEED_PASSWORD = "agora-seed-password"  # noqa: S105  # nosec B105 # published demo credential
BATCH = 2_000
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


@dataclass(frozen=True)
class SeedResult:
    users: int
    follows: int
    posts: int
    username_prefix: str


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))).capitalize() + "."


async def seed(
    settings: Settings, *, users: int, posts: int, follows_per_user: int, progress: Progress
) -> SeedResult:
    rng = random.Random()  # noqa: S311  # nosec B311 # demo data, not security
    prefix = f"seed_{secrets.token_hex(3)}"
    hasher = PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    password_hash = hasher.hash(SEED_PASSWORD)
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    try:
        user_ids = [uuid.uuid4() for _ in range(users)]
        task = progress.add_task("users", total=users)
        for start in range(0, users, BATCH):
            records = [
                (
                    uid,
                    f"{prefix}_{i}",
                    f"{prefix}_{i}@example.com",
                    password_hash,
                    f"Seed User {i}",
                )
                for i, uid in enumerate(user_ids[start : start + BATCH], start=start)
            ]
            await conn.copy_records_to_table(
                "users",
                records=records,
                columns=["id", "username", "email", "password_hash", "display_name"],
            )
            progress.advance(task, len(records))

        follow_count = min(follows_per_user, max(0, users - 1))
        task = progress.add_task("follows", total=users * follow_count)
        follows: list[tuple[uuid.UUID, uuid.UUID]] = []
        for follower in user_ids:
            candidates = [
                u for u in rng.sample(user_ids, min(follow_count + 1, users)) if u != follower
            ]
            follows.extend((follower, followee) for followee in candidates[:follow_count])
        written_follows = 0
        for start in range(0, len(follows), BATCH):
            batch = follows[start : start + BATCH]
            await conn.copy_records_to_table(
                "follows", records=batch, columns=["follower_id", "followee_id"]
            )
            written_follows += len(batch)
            progress.advance(task, len(batch))

        task = progress.add_task("posts", total=posts)
        now = datetime.now(UTC)
        for start in range(0, posts, BATCH):
            count = min(BATCH, posts - start)
            records_posts = [
                (
                    uuid.uuid4(),
                    rng.choice(user_ids),
                    _sentence(rng),
                    now - timedelta(seconds=rng.randint(0, 7 * 24 * 3600)),
                )
                for _ in range(count)
            ]
            await conn.copy_records_to_table(
                "posts", records=records_posts, columns=["id", "author_id", "content", "created_at"]
            )
            progress.advance(task, count)
    finally:
        await conn.close()
    return SeedResult(users=users, follows=written_follows, posts=posts, username_prefix=prefix)
