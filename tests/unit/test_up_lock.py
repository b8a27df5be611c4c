"""One `agora up` per working directory: the lock refuses a second holder and names the first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agora.devstack.lock import AlreadyRunning, UpLock

TRY_LOCK = (
    "import sys; from pathlib import Path; from agora.devstack.lock import UpLock, AlreadyRunning\n"
    "try:\n    UpLock(Path(sys.argv[1])).acquire()\n"
    "except AlreadyRunning as exc:\n    print(exc); sys.exit(1)\n"
)


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    lock = UpLock(tmp_path)
    lock.acquire()
    try:
        other = subprocess.run(
            [sys.executable, "-c", TRY_LOCK, str(tmp_path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert other.returncode == 1
        said = other.stdout.decode()
        assert f"already running in {tmp_path} (pid {os.getpid()})" in said
        assert "--workdir" in said
        assert (tmp_path / "agora-up.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(AlreadyRunning):
            UpLock(tmp_path).acquire()  # a second descriptor in this process too
    finally:
        lock.release()
    again = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(tmp_path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert again.returncode == 0, again.stdout


def test_a_stale_lock_file_of_a_dead_holder_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "agora-up.lock").write_text("999999\n")
    lock = UpLock(tmp_path)
    lock.acquire()
    lock.release()
