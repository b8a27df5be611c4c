"""Throwaway PostgreSQL clusters for tests that stop, break or replicate a server.

Made with the real server tools (``initdb``, ``pg_ctl``, ``pg_basebackup`` from
``pg_config --bindir``), listening on 127.0.0.1 on a free port, run as user ``postgres`` when
the tests run as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port


def _bindir() -> Path | None:
    """The machine's server tools, else the PostgreSQL that pgserver (a dependency) ships."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if (path / "initdb").exists():
            return path
    try:
        from pgserver._commands import POSTGRES_BIN_PATH  # noqa: PLC0415  # only without PostgreSQL on PATH: the binaries pgserver ships
    except ImportError:
        return None
    path = Path(POSTGRES_BIN_PATH)
    return path if (path / "initdb").exists() else None


BINDIR = _bindir()
needs_pg_tools = pytest.mark.skipif(BINDIR is None, reason="initdb/pg_ctl not installed")


def _server_user() -> str:
    """PostgreSQL refuses to run as root: the machine's ``postgres`` user, else pgserver's."""
    for name in ("postgres", "pgserver"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    subprocess.run(["useradd", "--system", "--no-create-home", "pgserver"], check=True)
    return "pgserver"


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", _server_user(), "--", *args]
    return args


def _run(args: list[str]) -> None:
    assert BINDIR is not None
    args = [str(BINDIR / args[0]), *args[1:]]
    subprocess.run(_as_postgres(args), check=True, capture_output=True, timeout=60)


@dataclass
class PgCluster:
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1"
        if not (self.datadir / "postmaster.pid").exists():
            # The socket directory is the data directory here, so a backup of a running
            # cluster carries its socket lock file; restored, it names the old postmaster's
            # pid, and a live process that has since taken that pid makes the start refuse.
            for stale in self.datadir.glob(".s.PGSQL.*.lock"):
                stale.unlink()
        try:
            log = str(self.log)
            _run(["pg_ctl", "-D", str(self.datadir), "-o", options, "-l", log, "-w", "start"])
        except subprocess.CalledProcessError as exc:
            tail = self.log.read_text()[-3000:] if self.log.exists() else "(no log)"
            raise RuntimeError(f"pg_ctl start failed for {self.datadir}:\n{tail}") from exc

    def stop(self, mode: str = "fast") -> None:
        _run(["pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop"])

    def stop_quietly(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")


def _workdir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="agora-pg-"))
    if os.geteuid() == 0:
        user = _server_user()
        shutil.chown(root, user, user)
    return root


def new_primary() -> PgCluster:
    """A started cluster that accepts streaming replicas (wal_level=replica is the default)."""
    datadir = _workdir() / "primary"
    _run(["initdb", "-D", str(datadir), "-U", "postgres", "--auth=trust", "-N"])
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write("fsync = on\nmax_wal_senders = 4\nwal_keep_size = 64MB\n")
    cluster = PgCluster(datadir, free_port())
    cluster.start()
    return cluster


def new_replica(primary: PgCluster) -> PgCluster:
    """A started streaming replica of ``primary`` (hot standby: it answers reads only)."""
    datadir = primary.datadir.parent / "replica"
    _run(
        [
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(datadir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ]
    )
    cluster = PgCluster(datadir, free_port())
    cluster.start()
    return cluster


def remove(cluster: PgCluster) -> None:
    cluster.stop_quietly()
    shutil.rmtree(cluster.datadir.parent, ignore_errors=True)
