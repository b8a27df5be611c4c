"""The encrypted logical dump against real servers: a PostgreSQL cluster of the test's own (the
server tools' version, so pg_dump matches it), S3 (moto behind TLS).

dump → upload → unreadable without the passphrase → download (checksum checked) → restore one
table into a fresh database → the rows match; then the ways it must fail, each with a message
that says what to do.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from tests.conftest import free_port
from tests.integration.backup.cli import agora
from tests.integration.backup.s3_stack import S3Stack, s3_stack
from tests.pgcluster import PgCluster, _run, _workdir, needs_pg_tools

pytestmark = [needs_pg_tools, pytest.mark.timeout(300)]

SOURCE, FRESH = "agora_issue15_logical_src", "agora_issue15_logical_fresh"
PASSPHRASE = "logical dump passphrase, 30 chars"
MARKER = "logical-plaintext-marker-51c2"
ROWS = 200_000


@dataclass
class Env:
    s3: S3Stack
    root: Path
    vars: dict[str, str]
    cluster: PgCluster

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint,
            verify=str(self.s3.ca_file),
            region_name="us-east-1",
            aws_access_key_id=self.s3.key_id,
            aws_secret_access_key=self.s3.secret,
        )


def url(cluster: PgCluster, dbname: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{cluster.port}/{dbname}"


def recreate(cluster: PgCluster, dbname: str) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    root = _workdir()
    (root / "s3").mkdir()
    _run(["initdb", "-D", str(root / "data"), "-U", "postgres", "--auth=trust", "-N"])
    cluster = PgCluster(root / "data", free_port())
    cluster.start()
    recreate(cluster, SOURCE)
    with psycopg.connect(url(cluster, SOURCE), autocommit=True) as conn:
        conn.execute("CREATE TABLE posts (id bigint PRIMARY KEY, body text NOT NULL)")
        conn.execute(
            "INSERT INTO posts SELECT g, %s || ' ' || md5(g::text) FROM generate_series(1, %s) g",
            (MARKER, ROWS),
        )
        conn.execute("CREATE TABLE follows (a bigint, b bigint)")
        conn.execute("INSERT INTO follows SELECT g, g + 1 FROM generate_series(1, 1000) g")
    try:
        with s3_stack(root / "s3") as s3:
            state = Env(
                s3,
                root,
                {
                    "AGORA_BACKUP_DATABASE_URL": url(cluster, SOURCE),
                    "AGORA_BACKUP_CONFIG_DIR": str(root / "backup"),
                    "AGORA_BACKUP_PASSPHRASE": PASSPHRASE,
                    "AGORA_BACKUP_S3_BUCKET": s3.bucket,
                    "AGORA_BACKUP_S3_ENDPOINT": s3.endpoint,
                    "AGORA_BACKUP_S3_CA_FILE": str(s3.ca_file),
                    "AGORA_BACKUP_S3_URI_STYLE": "path",
                    "AGORA_BACKUP_S3_ACCESS_KEY_ID": s3.key_id,
                    "AGORA_BACKUP_S3_SECRET_ACCESS_KEY": s3.secret,
                    "AGORA_BACKUP_S3_TIMEOUT_S": "3",
                    "AGORA_BACKUP_TEXTFILE_DIR": str(root / "textfile"),
                },
                cluster,
            )
            state.client().create_bucket(Bucket=s3.bucket)
            yield state
    finally:
        cluster.stop_quietly()
        shutil.rmtree(root, ignore_errors=True)


def keys(env: Env) -> list[str]:
    listed = env.client().list_objects_v2(Bucket=env.s3.bucket, Prefix="agora/logical/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_dump_is_encrypted_on_s3_and_one_table_restores_into_a_fresh_database(env: Env) -> None:
    began = time.monotonic()
    out = agora(env, "run", "logical").stdout
    dump_s = time.monotonic() - began
    [key] = keys(env)
    assert key in out
    body = env.client().get_object(Bucket=env.s3.bucket, Key=key)["Body"].read()
    assert MARKER.encode() not in body, "plaintext table data in the uploaded object"
    assert not body.startswith(b"PGDMP"), "an unencrypted pg_dump archive"
    assert body.startswith(b"AGORA-DUMP")
    assert key in agora(env, "list-logical").stdout

    recreate(env.cluster, FRESH)
    began = time.monotonic()
    fresh = url(env.cluster, FRESH)
    out = agora(env, "restore-logical", "--target-url", fresh, "--table", "posts").stdout
    restore_s = time.monotonic() - began
    assert "restored posts" in out
    query = "SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM posts"
    with psycopg.connect(url(env.cluster, SOURCE)) as src, psycopg.connect(fresh) as dst:
        assert dst.execute(query).fetchone() == src.execute(query).fetchone()
        only = dst.execute("SELECT relname FROM pg_stat_user_tables").fetchall()
        assert only == [("posts",)], "a single-table restore brought other tables along"
    metrics = (env.root / "textfile" / "agora_backup.prom").read_text()
    assert 'agora_backup_restore_drill_success{kind="logical"} 1.0' in metrics
    print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
        f"\nlogical: {ROWS} rows, dump+encrypt+upload {dump_s:.2f}s for {len(body) / 1e6:.1f} MB "
        f"stored; download+verify+decrypt+restore one table {restore_s:.2f}s"
    )


def test_wrong_passphrase_fails_clearly(env: Env) -> None:
    out = tmp_output(env)
    done = agora(
        env,
        "restore-logical",
        "--output",
        str(out),
        extra={"AGORA_BACKUP_PASSPHRASE": "not the passphrase of this dump"},
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "wrong passphrase" in done.stderr
    assert "not the passphrase" not in done.stdout + done.stderr
    assert not out.exists(), "a partial plaintext file was left behind"


def test_an_output_in_a_missing_directory_is_refused_clearly(env: Env) -> None:
    out = env.root / "no-such-directory" / "dump.pgdump"
    done = agora(env, "restore-logical", "--output", str(out), check=False)
    assert done.returncode == 2
    assert f"no directory {out.parent}; create it first" in done.stderr
    assert "Traceback" not in done.stderr


def tmp_output(env: Env) -> Path:
    return env.root / f"out-{time.monotonic_ns()}.pgdump"


def test_a_damaged_object_is_caught_by_its_checksum(env: Env) -> None:
    s3, key = env.client(), keys(env)[-1]
    head = s3.head_object(Bucket=env.s3.bucket, Key=key)
    body = bytearray(s3.get_object(Bucket=env.s3.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(Bucket=env.s3.bucket, Key=key, Body=bytes(body), Metadata=head["Metadata"])
    out = tmp_output(env)
    done = agora(env, "restore-logical", "--output", str(out), "--key", key, check=False)
    assert done.returncode == 2
    assert "checksum mismatch" in done.stderr, done.stderr
    assert not out.exists()


def test_dumps_past_retention_are_expired_and_the_rest_kept(env: Env) -> None:
    s3, [current] = env.client(), keys(env)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=31)
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=29)
    stale_key = f"agora/logical/{SOURCE}/{old:%Y%m%dT%H%M%SZ}.dump.aes"
    kept_key = f"agora/logical/{SOURCE}/{recent:%Y%m%dT%H%M%SZ}.dump.aes"
    for target in (stale_key, kept_key):
        s3.copy_object(
            Bucket=env.s3.bucket, Key=target, CopySource={"Bucket": env.s3.bucket, "Key": current}
        )
    out = agora(env, "run", "logical").stdout
    assert f"expired {stale_key}" in out
    left = keys(env)
    assert stale_key not in left
    assert kept_key in left
    assert current in left
    assert len(left) == 3


def test_clear_errors_without_bucket_and_when_s3_is_unreachable(env: Env) -> None:
    done = agora(env, "run", "logical", extra={"AGORA_BACKUP_S3_BUCKET": ""}, check=False)
    assert done.returncode == 2
    assert "no S3 repository: set AGORA_BACKUP_S3_BUCKET" in done.stderr

    done = agora(env, "run", "logical", extra={"AGORA_BACKUP_S3_BUCKET": "missing"}, check=False)
    assert done.returncode == 2
    assert "S3 bucket missing does not exist" in done.stderr, done.stderr

    dead = f"https://localhost:{free_port()}"
    done = agora(env, "list-logical", extra={"AGORA_BACKUP_S3_ENDPOINT": dead}, check=False)
    assert done.returncode == 2
    assert "S3 repository is unreachable" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
