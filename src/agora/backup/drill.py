"""The restore drill: restore into a throwaway cluster, replay to a restore point, verify it.

The source's row counts are taken under SHARE locks (writers wait, readers do not) in the same
transaction that creates the restore point, so the restored cluster must match them exactly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess  # nosec B404 # runs pg_amcheck, never a shell
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from agora.backup import metrics
from agora.backup.cluster import as_user, bindir, free_port, give_to, start, stop, wait_promoted
from agora.backup.pgbackrest import LOCAL, BackupError, PgBackRest
from agora.backup.physical import rpo_seconds
from agora.backup.settings import BackupSettings

Counts = dict[str, int]


@dataclass
class DrillReport:
    ok: bool = False
    rto_s: float = 0.0
    rpo_s: float = 0.0
    restore_s: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    amcheck: str = ""


def _tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[sql.Composed]:
    rows = conn.execute(
        "SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY schemaname, relname"
    ).fetchall()
    return [
        sql.SQL("{}.{}").format(sql.Identifier(str(s)), sql.Identifier(str(t))) for s, t in rows
    ]


def _counts(conn: psycopg.Connection[tuple[object, ...]], tables: list[sql.Composed]) -> Counts:
    counts: Counts = {}
    for table in tables:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        counts[table.as_string(conn)] = int(str(row[0])) if row else 0
    return counts


def mark_source(database_url: str, name: str) -> Counts:
    with psycopg.connect(database_url) as conn:
        conn.execute("SET lock_timeout = '30s'")
        tables = _tables(conn)
        if tables:
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.SQL(", ").join(tables)))
        counts = _counts(conn, tables)
        conn.execute("SELECT pg_create_restore_point(%s)", (name,))
        conn.commit()
    return counts


def _database(database_url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(database_url).get("dbname") or "postgres")


@contextlib.contextmanager
def exclusive(settings: BackupSettings) -> Iterator[None]:
    """One drill at a time per configuration: wait up to the lock timeout, then fail clearly."""
    settings.config_dir.mkdir(parents=True, exist_ok=True)
    path = settings.config_dir / "drill.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + settings.drill_lock_timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    raise BackupError(
                        f"another restore drill is running (pid {holder}, lock {path}); waited "
                        f"{settings.drill_lock_timeout_s:.0f}s (AGORA_BACKUP_DRILL_LOCK_TIMEOUT_S)."
                        " Let it finish, or stop it, then run the drill again"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def drill(
    settings: BackupSettings, *, before_checks: Callable[[str], None] | None = None
) -> DrillReport:
    """Run the drill; ``before_checks`` (tests) may alter the restored cluster first."""
    with exclusive(settings):  # outside the metrics: a drill locked out did not fail
        return _measured(settings, before_checks)


def _measured(settings: BackupSettings, before_checks: Callable[[str], None] | None) -> DrillReport:
    report = DrillReport()
    started = time.monotonic()
    try:
        report.rpo_s = rpo_seconds(settings)
        _run(settings, report, before_checks)
    finally:
        took = time.monotonic() - started
        metrics.record(
            settings.textfile_dir, "drill", success=report.ok, duration_s=took, rpo_s=report.rpo_s
        )
    return report


def _run(
    settings: BackupSettings, report: DrillReport, before_checks: Callable[[str], None] | None
) -> None:
    database_url = settings.require_database_url()
    name = f"agora-drill-{int(time.time())}"
    expected = mark_source(database_url, name)
    tool = PgBackRest(settings)
    tool.run("check", timeout=300)  # switches WAL and waits until the restore point is archived
    user = settings.run_as
    workdir = Path(tempfile.mkdtemp(prefix="agora-drill-", dir=settings.drill_dir))
    give_to(workdir, user)
    datadir = workdir / "data"
    started = False
    try:
        restore_began = time.monotonic()
        datadir.mkdir(mode=0o700)
        give_to(datadir, user)
        tool.run(
            f"--repo={LOCAL}",
            f"--pg1-path={datadir}",
            "--archive-mode=off",
            "--type=name",
            f"--target={name}",
            "--target-action=promote",
            "restore",
            timeout=24 * 3600,
        )
        report.restore_s = time.monotonic() - restore_began
        port = free_port()
        start(user, datadir, port)
        started = True
        dbname = _database(database_url)
        conninfo = f"host={datadir} port={port} user={settings.pg_user} dbname={dbname}"
        wait_promoted(conninfo)
        report.rto_s = time.monotonic() - restore_began
        if before_checks is not None:
            before_checks(conninfo)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            got = _counts(conn, _tables(conn))
        for table in sorted(set(expected) | set(got)):
            if expected.get(table) != got.get(table):
                report.mismatches.append(
                    f"{table}: source {expected.get(table)} rows, restored {got.get(table)}"
                )
        amcheck = subprocess.run(  # noqa: S603  # nosec B603 # fixed program
            as_user(
                user,
                [
                    str(bindir() / "pg_amcheck"),
                    "-h", str(datadir), "-p", str(port), "-U", settings.pg_user,
                    "--install-missing", "--heapallindexed", "-d", dbname,
                ],
            ),
            capture_output=True, text=True, check=False, timeout=24 * 3600,
        )  # fmt: skip
        report.amcheck = (amcheck.stdout + amcheck.stderr).strip() or "no corruption found"
        if amcheck.returncode != 0:
            report.mismatches.append(f"pg_amcheck: {report.amcheck}")
        report.ok = not report.mismatches
    finally:
        if started:
            with contextlib.suppress(BackupError):  # stopped already; the files go anyway
                stop(user, datadir)
        shutil.rmtree(workdir, ignore_errors=True)
