"""The logical backup at a size that shows its throughput: dump, encrypt, upload; then
download, verify, decrypt and restore one table — and what the encryption costs.

Prints, in one run (the machine's PostgreSQL, a scratch database ``agora_bench_logical``;
S3 = moto behind an Envoy TLS listener, as in the backup tests):
1. the source size and the dump's plaintext and stored (encrypted) sizes;
2. `agora backup run logical` wall time, and plain `pg_dump -Fc` to /dev/null beside it
   (the difference is encryption + hashing + upload);
3. `agora backup restore-logical --table posts` into a fresh database, wall time;
4. the AES-256-GCM envelope alone, MB/s.

Run: python -m benchmarks.backup_logical_bench   Environment: BENCH_ROWS (default 1,000,000).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import psycopg
from tests.integration.backup.s3_stack import s3_stack

from agora.backup import envelope
from agora.backup.logical import pg_tool

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SOURCE, TARGET = "agora_bench_logical", "agora_bench_logical_restore"
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))


def url(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def recreate(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def agora(env: dict[str, str], *args: str) -> float:
    started = time.monotonic()
    subprocess.run(  # noqa: S603 # our own CLI, fixed arguments
        [sys.executable, "-m", "agora", "backup", *args],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main() -> None:
    recreate(SOURCE)
    recreate(TARGET)
    with psycopg.connect(url(SOURCE), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE posts (id bigint PRIMARY KEY, author bigint, body text, at timestamptz)"
        )
        conn.execute(
            "INSERT INTO posts SELECT g, g %% 10000, repeat(md5(g::text), 4), now() "
            "FROM generate_series(1, %s) g",
            (ROWS,),
        )
        conn.execute(
            "CREATE TABLE follows AS SELECT g AS a, g + 1 AS b FROM generate_series(1, %s) g",
            (ROWS,),
        )
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        source_mb = row[0] / 1e6
    with tempfile.TemporaryDirectory(prefix="agora-bench-logical-") as tmp:
        root = Path(tmp)
        (root / "s3").mkdir()
        with s3_stack(root / "s3") as s3:
            env = {
                "AGORA_BACKUP_DATABASE_URL": url(SOURCE),
                "AGORA_BACKUP_CONFIG_DIR": str(root / "backup"),
                "AGORA_BACKUP_PASSPHRASE": "benchmark passphrase, long enough",
                "AGORA_BACKUP_S3_BUCKET": s3.bucket,
                "AGORA_BACKUP_S3_ENDPOINT": s3.endpoint,
                "AGORA_BACKUP_S3_CA_FILE": str(s3.ca_file),
                "AGORA_BACKUP_S3_URI_STYLE": "path",
                "AGORA_BACKUP_S3_ACCESS_KEY_ID": s3.key_id,
                "AGORA_BACKUP_S3_SECRET_ACCESS_KEY": s3.secret,
                "AGORA_BACKUP_TEXTFILE_DIR": str(root / "textfile"),
            }
            client = boto3.client(
                "s3", endpoint_url=s3.endpoint, verify=str(s3.ca_file), region_name="us-east-1",
                aws_access_key_id=s3.key_id, aws_secret_access_key=s3.secret,
            )  # fmt: skip
            client.create_bucket(Bucket=s3.bucket)
            started = time.monotonic()
            subprocess.run(  # noqa: S603 # the server's pg_dump, fixed arguments
                [pg_tool("pg_dump"), "-Fc", "-d", url(SOURCE)],
                stdout=subprocess.DEVNULL,
                check=True,
            )
            plain_dump_s = time.monotonic() - started
            dump_s = agora(env, "run", "logical")
            [item] = client.list_objects_v2(Bucket=s3.bucket)["Contents"]
            stored_mb = item["Size"] / 1e6
            restore_s = agora(
                env, "restore-logical", "--target-url", url(TARGET), "--table", "posts"
            )
    with psycopg.connect(url(TARGET)) as conn:
        row = conn.execute("SELECT count(*) FROM posts").fetchone()
        assert row is not None
        assert row[0] == ROWS
    data = os.urandom(64 << 20)
    started = time.monotonic()
    envelope.encrypt(
        [data[i : i + envelope.CHUNK] for i in range(0, len(data), envelope.CHUNK)],
        io.BytesIO(),
        "p" * 20,
    )
    seal_mbs = len(data) / 1e6 / (time.monotonic() - started)
    for name in (SOURCE, TARGET):
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(f"source: {ROWS:,} posts + {ROWS:,} follows, database {source_mb:.0f} MB")
    print(f"pg_dump -Fc to /dev/null: {plain_dump_s:.2f} s")
    print(
        f"agora backup run logical (dump + AES-256-GCM + SHA-256 + upload): {dump_s:.2f} s, "
        f"{stored_mb:.1f} MB stored, {source_mb / dump_s:.0f} MB/s of database"
    )
    print(
        "agora backup restore-logical --table posts "
        f"(download + verify + decrypt + pg_restore): {restore_s:.2f} s"
    )
    print(f"AES-256-GCM envelope alone: {seal_mbs:.0f} MB/s (incl. one scrypt derivation)")


if __name__ == "__main__":
    main()
