"""The runbook's memory-growth commands on a real process: SIGUSR2 starts tracemalloc, the next
one writes a snapshot; `heap compare` names what grew; `py-spy dump` reads the live stacks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from agora.observability import heap

PROGRAM = """
import sys, time
from pathlib import Path
from agora.observability import heap
heap.install("posts", Path(sys.argv[1]))
print("ready", flush=True)
hoard = []
while True:
    hoard.append(bytearray(10_000))  # grows ~1 MB/s: what the comparison must find
    time.sleep(0.01)
"""


def wait_for(paths: Path, count: int, within_s: float = 20.0) -> list[Path]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = sorted(paths.glob("heap-posts-*.tracemalloc"))
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} snapshots in {paths}")


def test_snapshots_on_sigusr2_show_what_grows_and_py_spy_dumps_the_stacks(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(  # the test's own interpreter and program
        [sys.executable, "-c", PROGRAM, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGUSR2)  # starts tracemalloc
        time.sleep(0.5)
        process.send_signal(signal.SIGUSR2)
        first = wait_for(tmp_path, 1)[0]
        time.sleep(1.1)  # a new second in the file name
        process.send_signal(signal.SIGUSR2)
        old, new = wait_for(tmp_path, 2)[:2]
        assert old == first
        assert heap.main(["compare", str(old), str(new)]) == 0
        grown = heap.compare(old, new)
        assert "<string>:9" in grown[0], grown[:3]  # the bytearray line of PROGRAM

        py_spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or "py-spy"
        dump = subprocess.run(  # py-spy of the dev extras on our own child
            [py_spy, "dump", "--pid", str(process.pid)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert dump.returncode == 0, dump.stderr
        assert "MainThread" in dump.stdout
        assert "<module>" in dump.stdout
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_compare_refuses_what_is_not_a_snapshot(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"not a snapshot")
    assert heap.main(["compare", str(bogus), str(bogus)]) == 1
    assert heap.main(["diff"]) == 2
