"""Backups against real servers: a cluster of the test's own, pgBackRest, S3 (moto behind TLS).

One cluster and one S3 stand-in for the module; the tests run in order and build on each other
(backup, disaster, restore, PITR, expiry, drill), as an operator's history would.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import psycopg
import pytest

from agora.backup.cluster import wait_promoted
from agora.backup.drill import drill
from agora.backup.physical import backups
from agora.backup.settings import BackupSettings
from tests.conftest import free_port
from tests.integration.backup.cli import agora
from tests.integration.backup.s3_stack import S3Stack, s3_stack
from tests.pgcluster import PgCluster, _run, _workdir, needs_pg_tools

pytestmark = [
    needs_pg_tools,
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest not installed"),
    pytest.mark.timeout(300),
]

ARCHIVE_TIMEOUT_S = 2
PASSPHRASE = "correct horse battery staple 15"
MARKER = "plaintext-marker-7f3a9c"
DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


@dataclass
class Env:
    cluster: PgCluster
    s3: S3Stack
    root: Path
    vars: dict[str, str] = field(default_factory=dict)

    def settings(self) -> BackupSettings:
        saved = dict(os.environ)
        os.environ.update(self.vars)
        try:
            return BackupSettings()
        finally:
            os.environ.clear()
            os.environ.update(saved)


def new_cluster(root: Path, *, archive: bool) -> PgCluster:
    datadir = root / ("data" if archive else "plain")
    _run(["initdb", "-D", str(datadir), "-U", "postgres", "--auth=trust", "-N", "--wal-segsize=1"])
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write(f"archive_mode = {'on' if archive else 'off'}\nfsync = off\n")
    cluster = PgCluster(datadir, free_port())
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    root = _workdir()  # owned by the cluster's OS user, which pgBackRest runs as
    (root / "s3").mkdir()
    with s3_stack(root / "s3") as s3:
        boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            verify=str(s3.ca_file),
            region_name="us-east-1",
            aws_access_key_id=s3.key_id,
            aws_secret_access_key=s3.secret,
        ).create_bucket(Bucket=s3.bucket)
        cluster = new_cluster(root, archive=True)
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE acks (id bigint PRIMARY KEY, note text, at timestamptz)")
        state = Env(cluster, s3, root)
        state.vars = {
            "AGORA_BACKUP_PG_DATA": str(cluster.datadir),
            "AGORA_BACKUP_PG_PORT": str(cluster.port),
            "AGORA_BACKUP_PG_SOCKET_DIR": str(cluster.datadir),
            "AGORA_BACKUP_DATABASE_URL": cluster.url,
            "AGORA_BACKUP_CONFIG_DIR": str(root / "backup"),
            "AGORA_BACKUP_REPO_PATH": str(root / "repo"),
            "AGORA_BACKUP_PASSPHRASE": PASSPHRASE,
            "AGORA_BACKUP_S3_BUCKET": s3.bucket,
            "AGORA_BACKUP_S3_ENDPOINT": s3.endpoint,
            "AGORA_BACKUP_S3_CA_FILE": str(s3.ca_file),
            "AGORA_BACKUP_S3_URI_STYLE": "path",
            "AGORA_BACKUP_S3_ACCESS_KEY_ID": s3.key_id,
            "AGORA_BACKUP_S3_SECRET_ACCESS_KEY": s3.secret,
            "AGORA_BACKUP_S3_TIMEOUT_S": "3",
            "AGORA_BACKUP_RETENTION_FULL_TYPE": "count",
            "AGORA_BACKUP_RETENTION_FULL": "2",
            "AGORA_BACKUP_ARCHIVE_TIMEOUT_S": str(ARCHIVE_TIMEOUT_S),
            "AGORA_BACKUP_TEXTFILE_DIR": str(root / "textfile"),
            "AGORA_BACKUP_DRILL_DIR": str(root),
        }
        try:
            yield state
        finally:
            state.cluster.stop_quietly()
            shutil.rmtree(root, ignore_errors=True)


class Writer(threading.Thread):
    """Inserts rows one by one; records each write the server acknowledged, and when."""

    def __init__(self, url: str, start_id: int) -> None:
        super().__init__(daemon=True)
        self.url, self.next_id = url, start_id
        self.acked: list[tuple[int, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.is_set():
                conn.execute(
                    "INSERT INTO acks VALUES (%s, %s, now())",
                    (self.next_id, f"{MARKER} {self.next_id}"),
                )
                self.acked.append((self.next_id, time.time()))
                self.next_id += 1
                time.sleep(0.02)

    def stop(self) -> list[tuple[int, float]]:
        self.stopping.set()
        self.join(10)
        return self.acked


def wait_ready(cluster: PgCluster, timeout: float = 60) -> None:
    """The drill's own wait: until WAL replay is done and the cluster accepts writes."""
    wait_promoted(cluster.url, timeout_s=timeout)


def ids(cluster: PgCluster) -> list[int]:
    with psycopg.connect(cluster.url) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM acks ORDER BY id")]


def test_full_backup_disaster_and_restore_latest_loses_at_most_archive_timeout(env: Env) -> None:
    out = agora(env, "init")
    assert "check passed" in out.stdout
    writer = Writer(env.cluster.url, 1)
    writer.start()
    agora(env, "run", "full")
    time.sleep(2 * ARCHIVE_TIMEOUT_S + 1)  # more writes after the backup, several WAL switches
    acked = writer.stop()
    disaster_at = time.time()
    env.cluster.stop("immediate")
    shutil.rmtree(env.cluster.datadir)

    began = time.monotonic()
    out = agora(env, "restore", "--target", str(env.cluster.datadir))
    restore_s = time.monotonic() - began
    env.cluster.start()
    wait_ready(env.cluster)
    rto_s = time.monotonic() - began

    back = ids(env.cluster)
    acked_ids = [i for i, _ in acked]
    assert back == acked_ids[: len(back)], (
        "a hole: an acknowledged write before the last one is missing"
    )
    last_back_at = dict(acked)[back[-1]]
    rpo_s = disaster_at - last_back_at
    size_mb = sum(f.stat().st_size for f in env.cluster.datadir.rglob("*") if f.is_file()) / 1e6
    print(  # noqa: T201  # the measured figure is this test's report (pytest -s)
        f"\nrestore: {len(back)}/{len(acked)} acknowledged writes back; RPO {rpo_s:.2f}s "
        f"(archive_timeout {ARCHIVE_TIMEOUT_S}s); RTO {rto_s:.2f}s (restore {restore_s:.2f}s) "
        f"for {size_mb:.1f} MB: {size_mb / restore_s:.1f} MB/s restore throughput"
    )
    assert rpo_s <= ARCHIVE_TIMEOUT_S + 3
    metrics = (env.root / "textfile" / "agora_backup.prom").read_text()
    assert 'agora_backup_last_success_timestamp_seconds{kind="full"} 0.0' not in metrics
    assert 'agora_backup_restore_drill_success{kind="full"} 1.0' in metrics


def _archived(cluster: PgCluster) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        wal = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
        conn.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
            if row and row[0] and wal and row[0] >= wal[0]:
                return
            time.sleep(0.2)
    raise AssertionError("WAL was not archived")


def test_point_in_time_restore_from_s3(env: Env) -> None:
    agora(env, "run", "diff")
    with psycopg.connect(env.cluster.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO acks SELECT g, 'before', now() FROM generate_series(100001, 100050) g"
        )
        time.sleep(1.1)
        target = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        time.sleep(1.1)
        conn.execute(
            "INSERT INTO acks SELECT g, 'after', now() FROM generate_series(200001, 200050) g"
        )
    _archived(env.cluster)
    restored = PgCluster(env.root / "pitr", free_port())
    agora(
        env, "restore", "--repo", "2", "--target", str(restored.datadir), "--to", target.isoformat()
    )
    restored.start()
    try:
        wait_ready(restored)
        back = set(ids(restored))
        assert set(range(100001, 100051)) <= back
        assert not back & set(range(200001, 200051))
    finally:
        restored.stop_quietly()
        shutil.rmtree(restored.datadir, ignore_errors=True)


def test_s3_objects_hold_no_plaintext(env: Env) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=env.s3.endpoint,
        verify=str(env.s3.ca_file),
        region_name="us-east-1",
        aws_access_key_id=env.s3.key_id,
        aws_secret_access_key=env.s3.secret,
    )
    keys = [
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=env.s3.bucket)
        for o in p.get("Contents", [])
    ]
    assert any("/archive/" in k for k in keys)
    assert any("/backup/" in k for k in keys)
    for key in keys:
        body = s3.get_object(Bucket=env.s3.bucket, Key=key)["Body"].read()
        assert MARKER.encode() not in body, key
        assert body[:8] == b"Salted__", f"{key} is not pgBackRest-encrypted"


def test_wrong_passphrase_fails_clearly(env: Env) -> None:
    done = agora(
        env, "list", extra={"AGORA_BACKUP_PASSPHRASE": "not the right passphrase"}, check=False
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "wrong passphrase" in done.stderr, done.stderr
    assert "not the right passphrase" not in done.stderr + done.stdout


def test_expiry_keeps_the_newest_full_backups(env: Env) -> None:
    first = env.settings()

    def fulls_by_repo() -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for item in backups(first):
            if item["type"] == "full":
                found.setdefault(item["database"]["repo-key"], []).append(item["label"])
        return found

    before = fulls_by_repo()
    assert set(before) == {1, 2}, "a full backup in each repository (local, S3)"
    agora(env, "run", "full")
    agora(env, "run", "full")
    after = fulls_by_repo()
    for repo in (1, 2):  # each repository expires on its own: count them apart
        assert len(after[repo]) == 2, f"repo{repo}: retention 2 keeps two fulls"
        assert not set(after[repo]) & set(before[repo]), f"repo{repo}: an old full outlived it"
    assert all(b["type"] != "diff" for b in backups(first)), "a diff of an expired full survived"
    assert "full" in agora(env, "list").stdout


def test_drill_passes_on_the_real_cluster(env: Env) -> None:
    out = agora(env, "drill")
    assert "drill passed" in out.stdout
    print("\n" + out.stdout)  # noqa: T201  # the measured figure is this test's report (pytest -s)
    metrics = (env.root / "textfile" / "agora_backup.prom").read_text()
    assert 'agora_backup_restore_drill_success{kind="drill"} 1.0' in metrics


def _locked(path: Path) -> bool:
    if not path.exists():
        return False
    with path.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_a_second_drill_at_once_fails_clearly_and_the_first_passes(env: Env) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "agora", "backup", "drill"],
        env={**os.environ, **env.vars},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = env.root / "backup" / "drill.lock"
        deadline = time.monotonic() + 30
        while not _locked(lock):
            assert first.poll() is None, "the first drill ended before taking its lock"
            assert time.monotonic() < deadline, "the first drill never took its lock"
            time.sleep(0.05)
        second = agora(env, "drill", extra={"AGORA_BACKUP_DRILL_LOCK_TIMEOUT_S": "1"}, check=False)
        assert second.returncode == 2
        assert "another restore drill is running" in second.stderr, second.stderr
        assert f"pid {first.pid}" in second.stderr
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, out + err
    assert "drill passed" in out


def test_drill_fails_when_a_restored_table_differs(env: Env) -> None:
    def tamper(conninfo: str) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM acks WHERE id = (SELECT min(id) FROM acks)")

    report = drill(env.settings(), before_checks=tamper)
    assert not report.ok
    assert any("acks" in line for line in report.mismatches)
    metrics = (env.root / "textfile" / "agora_backup.prom").read_text()
    assert 'agora_backup_restore_drill_success{kind="drill"} 0.0' in metrics


def test_corrupted_backup_file_is_caught_by_verify(env: Env) -> None:
    agora(env, "verify")
    victims = sorted((env.root / "repo" / "backup").rglob("pg_data/base/*/*"))
    victim = max(victims, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    done = agora(env, "verify", check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "verify failed" in done.stderr, done.stderr


def test_clear_errors_without_repository_s3_or_archiving(env: Env) -> None:
    done = agora(
        env, "run", "full", extra={"AGORA_BACKUP_CONFIG_DIR": str(env.root / "none")}, check=False
    )
    assert done.returncode == 2
    assert "agora backup init" in done.stderr

    dead = f"https://localhost:{free_port()}"
    done = agora(
        env,
        "init",
        extra={"AGORA_BACKUP_S3_ENDPOINT": dead, "AGORA_BACKUP_CONFIG_DIR": str(env.root / "dead")},
        check=False,
    )
    assert done.returncode == 2
    assert "S3 repository is unreachable" in done.stderr, done.stderr

    plain = new_cluster(env.root, archive=False)
    try:
        extra = {
            "AGORA_BACKUP_PG_PORT": str(plain.port),
            "AGORA_BACKUP_PG_SOCKET_DIR": str(plain.datadir),
            "AGORA_BACKUP_PG_DATA": str(plain.datadir),
            "AGORA_BACKUP_CONFIG_DIR": str(env.root / "plaincfg"),
        }
        done = agora(env, "init", extra=extra, check=False)
        assert done.returncode == 2
        assert "archive_mode is off" in done.stderr, done.stderr
    finally:
        plain.stop_quietly()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_backup_alert_rules_check_and_unit_tests() -> None:
    rules, tests = DEPLOY / "rules" / "backup.rules.yml", DEPLOY / "tests" / "backup.test.yml"
    for args in (["check", "rules", str(rules)], ["test", "rules", str(tests)]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
