from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from agora.db.migrate import current_revision
from tests.conftest import scratch_database


@pytest.fixture
def empty_database_url(postgres_admin_url: str) -> Iterator[str]:
    """A database with nothing in it, not even the schema; dropped afterwards."""
    name = f"agora_migrate_test_{os.getpid()}"
    with scratch_database(postgres_admin_url, name, migrate=False) as url:
        yield url


def test_migrate_from_several_processes_at_once_applies_once(empty_database_url: str) -> None:
    url = empty_database_url
    env = {**os.environ, "AGORA_DATABASE_URL": url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "agora", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    assert all("database at revision 0003" in out for out in outputs)
    assert current_revision(url) == "0003"
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT count(*) FROM alembic_version").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
            (
                [
                    "users",
                    "posts",
                    "follows",
                    "likes",
                    "notifications",
                    "refresh_tokens",
                    "signing_keys",
                ],
            ),
        ).fetchone()
    assert versions == (1,)
    assert tables == (7,)

    again = subprocess.run(
        [sys.executable, "-m", "agora", "migrate"], env=env, capture_output=True, check=False
    )
    assert again.returncode == 0


def test_invalid_configuration_is_refused_with_the_variable_named() -> None:
    env = {**os.environ, "AGORA_ENV": "staging"}
    result = subprocess.run(
        [sys.executable, "-m", "agora", "migrate"], env=env, capture_output=True, check=False
    )
    assert result.returncode == 2
    assert b"AGORA_ENV" in result.stderr
