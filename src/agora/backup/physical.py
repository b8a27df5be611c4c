"""Physical backups: set up the stanza and archiving, back up, list, restore, measure RPO."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from agora.backup import metrics
from agora.backup.cluster import give_to
from agora.backup.pgbackrest import (
    LOCAL,
    S3,
    BackupError,
    PgBackRest,
    archive_command,
    write_config,
)
from agora.backup.settings import BackupSettings


def admin_conninfo(settings: BackupSettings) -> str:
    return (
        f"host={settings.pg_socket_dir.resolve()} port={settings.pg_port} "
        f"user={settings.pg_user} dbname=postgres connect_timeout=5"
    )


def repos(settings: BackupSettings) -> list[int]:
    return [LOCAL, S3] if settings.s3_bucket is not None else [LOCAL]


def init(settings: BackupSettings) -> list[str]:
    """Write the config, point archive_command at pgBackRest, create the stanza, check it."""
    done = [f"wrote {write_config(settings)}"]
    try:
        with psycopg.connect(admin_conninfo(settings), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET archive_command = '{archive_command(settings)}'")
            conn.execute(f"ALTER SYSTEM SET archive_timeout = '{settings.archive_timeout_s}s'")
            conn.execute("SELECT pg_reload_conf()")
            row = conn.execute("SHOW archive_mode").fetchone()
    except psycopg.OperationalError as exc:
        raise BackupError(
            f"cannot reach the cluster at {settings.pg_socket_dir} port {settings.pg_port}: "
            f"{str(exc).strip()} (check AGORA_BACKUP_PG_SOCKET_DIR / _PG_PORT)"
        ) from None
    done.append(f"archive_command set, archive_timeout={settings.archive_timeout_s}s")
    if row is None or row[0] == "off":
        raise BackupError(
            "the cluster is not archiving: archive_mode is off. Set archive_mode = on in "
            "postgresql.conf, restart PostgreSQL, then run `agora backup init` again"
        )
    tool = PgBackRest(settings)
    tool.run("stanza-create", timeout=120)
    done.append(f"stanza {settings.stanza} ready in repo(s) {repos(settings)}")
    tool.run("check", timeout=120)
    done.append("check passed: WAL reaches every repository")
    return done


def rpo_seconds(settings: BackupSettings) -> float:
    """Age of the newest archived WAL segment: the writes a disaster now would lose."""
    with psycopg.connect(admin_conninfo(settings), autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM now() - last_archived_time) FROM pg_stat_archiver"
        ).fetchone()
    return float(row[0]) if row and row[0] is not None else float("inf")


def run_backup(settings: BackupSettings, kind: str) -> float:
    """A full/diff/incr backup into each repository; returns seconds taken."""
    started = time.monotonic()
    tool = PgBackRest(settings)
    try:
        for repo in repos(settings):
            tool.run(f"--repo={repo}", f"--type={kind}", "backup", timeout=24 * 3600)
    except BackupError:
        metrics.record(settings.textfile_dir, kind, success=False)
        raise
    took = time.monotonic() - started
    latest = latest_backup(settings)
    size = float(latest["info"]["repository"]["delta"]) if latest else 0.0
    rpo = rpo_seconds(settings)
    metrics.record(
        settings.textfile_dir, kind, success=True, duration_s=took, size_bytes=size, rpo_s=rpo
    )
    return took


def backups(settings: BackupSettings) -> list[dict[str, Any]]:
    stanzas = PgBackRest(settings).info()
    if not stanzas:
        return []
    found: list[dict[str, Any]] = stanzas[0].get("backup", [])
    return found


def latest_backup(settings: BackupSettings) -> dict[str, Any] | None:
    found = backups(settings)
    return found[-1] if found else None


def verify(settings: BackupSettings) -> list[str]:
    """Check every backup and archived WAL file in each repository against its checksum."""
    tool = PgBackRest(settings)
    return [tool.verify(repo) for repo in repos(settings)]


@dataclass(frozen=True)
class Restored:
    target: Path
    seconds: float


def restore(
    settings: BackupSettings,
    target: Path,
    *,
    to: dt.datetime | None = None,
    repo: int | None = None,
) -> Restored:
    """Restore the latest backup (then WAL to ``to``, or to the end) into ``target``."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: restore into a new or empty directory")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    give_to(target, settings.run_as)
    args = [f"--pg1-path={target.resolve()}"]
    if to is not None:
        stamp = to.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        args += ["--type=time", f"--target={stamp}", "--target-action=promote"]
    if repo is not None:
        args.append(f"--repo={repo}")
    started = time.monotonic()
    PgBackRest(settings).run(*args, "restore", timeout=24 * 3600)
    return Restored(target, time.monotonic() - started)
