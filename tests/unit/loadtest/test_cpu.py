"""CPU accounting counts the work of processes that ended during the run."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from agora.loadtest.cpu import cpu_seconds, snapshot

# A parent that starts a child, which burns ~1 s of CPU and ends; the parent reaps it and
# idles (like PostgreSQL's postmaster and a backend the pool recycled).
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nend = time.process_time() + 1.0\\n"
                          "while time.process_time() < end: pass"])
print(child.pid, flush=True)
child.wait()
print("reaped", flush=True)
time.sleep(30)
"""


def test_a_child_that_ends_during_the_run_is_counted_once_in_its_parents_group() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            child = psutil.Process(int(parent.stdout.readline()))
            while child.is_running() and child.cpu_times().user < 0.1:
                time.sleep(0.01)  # the child is under way before the run's first snapshot
            before = snapshot([parent.pid], [])
            assert parent.stdout.readline().strip() == "reaped"
            after = snapshot([parent.pid], [])
        finally:
            parent.kill()
    assert child.pid in before
    assert child.pid not in after
    spent = sum(cpu_seconds(before, after).values())
    # Its CPU after the first snapshot: ~0.9 s; counting only live processes gave ~0.
    assert 0.5 < spent < 1.2, spent
