"""The seeded data set of a load test: made once with `agora seed`'s code, reused after."""

from __future__ import annotations

import asyncio
import json
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


def ensure_seed(settings: Settings, scenario: Scenario, workdir: Path) -> Path:
    """The users file k6 reads (``{"users": [[username, id], ...], "ids": [...]}``), from the
    data set already in this database when it is big enough, else from a fresh seed."""
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
    path = workdir / "loadtest-users.json"
    path.write_text(json.dumps({"users": users, "ids": [uid for _, uid in users]}))
    return path
