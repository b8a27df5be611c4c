"""Starting, querying and stopping a restored cluster (the drill's throwaway one)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess  # nosec B404 # runs PostgreSQL's own tools (pg_config, initdb, pg_ctl), never a shell
import time
from pathlib import Path

import psycopg

from agora.backup.pgbackrest import BackupError


def bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        raise BackupError("pg_config not found: install the PostgreSQL server package")
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)  # noqa: S603  # nosec B603
    return Path(out.stdout.strip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def as_user(user: str, args: list[str]) -> list[str]:
    if os.geteuid() == 0 and user != "root":
        return ["runuser", "-u", user, "--", *args]
    return args


def give_to(path: Path, user: str) -> None:
    """Hand a directory to the cluster's OS user (only root can, and only root needs to)."""
    if os.geteuid() == 0 and user != "root":
        shutil.chown(path, user, user)


def pg_ctl(user: str, *args: str) -> None:
    command = as_user(user, [str(bindir() / "pg_ctl"), *args])
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)  # noqa: S603  # nosec B603
    if done.returncode != 0:
        raise BackupError(f"pg_ctl {args[0]} failed: {(done.stderr + done.stdout).strip()}")


def start(user: str, datadir: Path, port: int) -> None:
    options = f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1"
    log = datadir.parent / f"{datadir.name}.log"
    pg_ctl(user, "start", "-D", str(datadir), "-o", options, "-l", str(log), "-w", "-t", "600")


def stop(user: str, datadir: Path) -> None:
    pg_ctl(user, "stop", "-D", str(datadir), "-m", "fast", "-w")


def wait_promoted(conninfo: str, timeout_s: float = 600) -> None:
    """Until WAL replay has reached its target and the cluster accepts writes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    raise BackupError(f"the restored cluster did not finish recovery in {timeout_s:.0f}s")
