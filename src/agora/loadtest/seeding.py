"""The seeded data set of a load test: made once with `agora seed`'s code, reused after."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
import uuid
from pathlib import Path

import asyncpg
from rich.progress import Progress

from agora.config import Settings
from agora.db.pool import asyncpg_dsn
from agora.devstack.seed import seed
from agora.loadtest.scenarios import Scenario


async def _seeded_users(database_url: str, prefix: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT username, id::text AS id FROM users WHERE username LIKE $1 "
            "ORDER BY substring(username FROM '_(\\d+)$')::int",
            prefix.replace("_", "\\_") + "\\_%",
        )
    finally:
        await conn.close()
    return [(row["username"], row["id"]) for row in rows]


async def remember_sessions(
    database_url: str, users: list[tuple[str, str]], share: float, ttl_s: int
) -> list[str]:
    """A fresh refresh token (a session signed in earlier, as the app stores it) for about
    ``share`` of ``users``, "" for the rest; the same users every run (a fixed draw).

    The row is what auth's login writes (``agora.services.auth.repository``): a new family
    whose id is the session's, the token's SHA-256. Tools never import a service
    (docs/architecture.md), so the statement is repeated here, and
    tests/e2e/test_loadtest_smoke.py spends these tokens through the real auth."""
    draw = random.Random(0)  # noqa: S311  # nosec B311 # which users, not a secret
    tokens = [secrets.token_urlsafe(32) if draw.random() < share else "" for _ in users]
    rows = [
        (uuid.uuid4(), uuid.UUID(user_id), hashlib.sha256(token.encode()).digest(), float(ttl_s))
        for (_, user_id), token in zip(users, tokens, strict=True)
        if token
    ]
    if not rows:
        return tokens
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.executemany(
            "INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at) "
            "VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            rows,
        )
    finally:
        await conn.close()
    return tokens


def ensure_seed(settings: Settings, scenario: Scenario, workdir: Path) -> Path:
    """The users file k6 reads (``{"users": [[username, id], ...], "ids": [...],
    "remembered": [refresh token or "", ...]}``), from the data set already in this database
    when it is big enough, else from a fresh seed; the scenario's ``returning`` share of the
    users come back on a remembered session instead of their password."""
    database_url = settings.require_database_url()
    marker = workdir / "loadtest-seed.json"
    users: list[tuple[str, str]] = []
    if marker.exists():
        known = json.loads(marker.read_text())
        if known.get("database_url") == database_url:
            users = asyncio.run(_seeded_users(database_url, known["prefix"]))
    if len(users) < max(scenario.users, scenario.seed_users):
        with Progress() as progress:
            result = asyncio.run(
                seed(
                    settings,
                    users=max(scenario.users, scenario.seed_users),
                    posts=scenario.seed_posts,
                    follows_per_user=scenario.seed_follows,
                    celebrities=scenario.seed_celebrities,
                    progress=progress,
                )
            )
        workdir.mkdir(parents=True, exist_ok=True)
        marker.write_text(
            json.dumps({"database_url": database_url, "prefix": result.username_prefix})
        )
        users = asyncio.run(_seeded_users(database_url, result.username_prefix))
    remembered = asyncio.run(
        remember_sessions(database_url, users, scenario.returning, settings.refresh_token_ttl_s)
    )
    path = workdir / "loadtest-users.json"
    listed = {"users": users, "ids": [uid for _, uid in users], "remembered": remembered}
    path.write_text(json.dumps(listed))
    return path
