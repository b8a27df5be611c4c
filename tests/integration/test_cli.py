"""The `agora` command's own subcommands, run as a user runs them (a real process)."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from argon2 import PasswordHasher

from agora.config import Settings
from agora.devstack.seed import SEED_PASSWORD
from tests.conftest import FAST_HASH


def agora(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agora", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "AGORA_DATABASE_URL": settings.require_database_url(),
        **{f"AGORA_{key.upper()}": str(value) for key, value in FAST_HASH.items()},
    }


def test_help_explains_every_command() -> None:
    result = agora("--help")
    assert result.returncode == 0
    for command in ("up", "serve", "migrate", "keys", "seed"):
        assert command in result.stdout
    serve_help = agora("serve", "--help")
    assert "auth, posts or realtime" in serve_help.stdout
    assert "--port" in serve_help.stdout
    assert "rotate" in agora("keys", "--help").stdout


def test_serve_refuses_an_unknown_service() -> None:
    result = agora("serve", "billing")
    assert result.returncode == 2
    assert "billing" in result.stderr


def test_seed_creates_users_follows_and_posts_that_can_log_in(
    env: dict[str, str], settings: Settings
) -> None:
    result = agora("seed", "--users", "40", "--posts", "300", "--follows", "5", env=env)
    assert result.returncode == 0, result.stderr
    assert "seeded 40 users" in result.stdout
    with psycopg.connect(settings.require_database_url()) as conn:
        users, follows, posts, self_follows = conn.execute(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM follows), "
            "(SELECT count(*) FROM posts), "
            "(SELECT count(*) FROM follows WHERE follower_id = followee_id)"
        ).fetchone() or (None, None, None, None)
        password_hash = conn.execute("SELECT password_hash FROM users LIMIT 1").fetchone()
    assert (users, follows, posts, self_follows) == (40, 200, 300, 0)
    assert password_hash is not None
    assert PasswordHasher().verify(password_hash[0], SEED_PASSWORD)


def test_seed_twice_adds_more_users_without_conflicts(env: dict[str, str]) -> None:
    assert agora("seed", "--users", "5", "--posts", "0", env=env).returncode == 0
    second = agora("seed", "--users", "5", "--posts", "0", env=env)
    assert second.returncode == 0, second.stderr


def test_keys_rotate_adds_a_published_key_and_schedules_the_old_ones_retirement(
    env: dict[str, str], settings: Settings
) -> None:
    first = agora("keys", "rotate", env=env)
    assert first.returncode == 0, first.stderr
    second = agora("keys", "rotate", env=env)
    assert second.returncode == 0, second.stderr
    assert "published now, signing in 40s" in second.stdout
    with psycopg.connect(settings.require_database_url()) as conn:
        rows = conn.execute(
            "SELECT kid, retired_at IS NULL, retired_at > now() FROM signing_keys "
            "ORDER BY created_at"
        ).fetchall()
    assert len(rows) == 2
    assert rows[0][1:] == (False, True)  # retirement scheduled, not yet come
    assert rows[1][1] is True
    assert rows[1][0] in second.stdout


@pytest.mark.usefixtures("env")
def test_commands_that_need_the_database_say_so() -> None:
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    for args in (("seed",), ("keys", "rotate"), ("migrate",)):
        result = subprocess.run(
            [sys.executable, "-m", "agora", *args],
            env=bare,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, args
        assert "AGORA_DATABASE_URL is not set" in result.stderr
