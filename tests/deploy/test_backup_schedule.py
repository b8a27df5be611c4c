"""The backup schedules: systemd units verified by systemd itself, the timers and the compose
loop (`scripts/backup.sh schedule`) agreeing hour by hour, and the wrapper calling agora."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy/systemd"
SCRIPT = ROOT / "scripts/backup.sh"
KINDS = ("full", "diff", "logical", "drill")
BASE = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # the 1st: the drill's day included

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze (package systemd) missing"
)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, check=False, timeout=60, env=env or dict(os.environ)
    )


@needs_systemd
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    for unit in UNITS.iterdir():
        text = unit.read_text()
        # Installed paths do not exist on a test machine: point them at the repository's script
        # and let the settings file be absent; everything else is verified as shipped.
        text = text.replace("/usr/local/bin/agora-backup", str(SCRIPT))
        text = text.replace("EnvironmentFile=/", "EnvironmentFile=-/")
        (tmp_path / unit.name).write_text(text)
    names = [f"agora-backup-{kind}.timer" for kind in KINDS]
    names += [f"agora-backup@{kind}.service" for kind in KINDS]
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True, text=True, check=False, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", f"systemd warns: {done.stderr}"  # unknown keys only warn


def timer_hours(kind: str) -> set[tuple[int, int]]:
    """(day, hour) of each time the timer elapses on Dec 1 and 2, as systemd computes it."""
    spec = re.search(r"^OnCalendar=(.+)$", (UNITS / f"agora-backup-{kind}.timer").read_text(), re.M)
    assert spec is not None
    done = run(
        "systemd-analyze", "calendar", "--iterations=60",
        "--base-time=2026-11-30 23:59:59 UTC", spec.group(1),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    hours = set()
    for stamp in re.findall(r"(\d{4}-\d{2}-\d{2} \d{2}):\d{2}:\d{2} UTC", done.stdout):
        when = dt.datetime.strptime(stamp, "%Y-%m-%d %H").replace(tzinfo=dt.UTC)
        if when < BASE + dt.timedelta(days=2):
            hours.add((when.day, when.hour))
    return hours


@needs_systemd
def test_timers_and_the_compose_loop_run_the_same_jobs_every_hour() -> None:
    from_timers = {kind: timer_hours(kind) for kind in KINDS}
    from_script: dict[str, set[tuple[int, int]]] = {kind: set() for kind in KINDS}
    for hour in range(48):
        when = BASE + dt.timedelta(hours=hour, minutes=30)
        done = run(str(SCRIPT), "due", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert done.returncode == 0, done.stderr
        for kind in done.stdout.split():
            from_script[kind].add((when.day, when.hour))
    assert from_script == from_timers
    assert len(from_timers["diff"]) == 46  # every hour but the two fulls'
    assert from_timers["drill"] == {(1, 5)}


def test_backup_sh_runs_agora_backup(tmp_path: Path) -> None:
    fake = tmp_path / "agora"
    fake.write_text('#!/bin/sh\necho "$AGORA_BACKUP_STANZA $*"\n')
    fake.chmod(0o755)
    settings = tmp_path / "backup.env"
    settings.write_text("export AGORA_BACKUP_STANZA=from-env-file\n")
    env = {**os.environ, "AGORA_BIN": str(fake), "AGORA_BACKUP_ENV_FILE": str(settings)}
    for job, expected in (
        ("full", "backup run full"),
        ("incr", "backup run incr"),
        ("logical", "backup run logical"),
        ("drill", "backup drill"),
        ("verify", "backup verify"),
    ):
        done = run(str(SCRIPT), job, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"from-env-file {expected}"
    done = run(str(SCRIPT), "restore", env=env)
    assert done.returncode == 64
    assert "backup.sh full|diff|incr|logical" in done.stderr
