"""Flame graphs: one instance of each service, recorded by py-spy from outside."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agora.loadtest.profiling import FlameGraphs, first_instances

BUSY = "import sys\nwhile True:\n    sum(range(1000))"


def spawn(service: str, port: int) -> subprocess.Popen[bytes]:
    # A busy interpreter whose command line looks like `agora serve <service> --port <port>`.
    return subprocess.Popen([sys.executable, "-c", BUSY, "serve", service, "--port", str(port)])


@pytest.fixture
def instances() -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [spawn("posts", 28084), spawn("posts", 28081), spawn("auth", 28080)]
    yield started
    for process in started:
        process.kill()
        process.wait()


def test_each_service_is_profiled_at_its_first_instance(
    instances: list[subprocess.Popen[bytes]],
) -> None:
    chosen = first_instances(psutil.Process(p.pid) for p in instances)
    assert chosen == {
        "auth": (instances[2].pid, "auth:28080"),
        "posts": (instances[1].pid, "posts:28081"),
    }


def test_the_graphs_are_svg_files_of_the_running_instances(
    instances: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    flames = FlameGraphs(lambda: [p.pid for p in instances], [], tmp_path, 0, 2)
    flames.start()
    written = flames.stop()
    assert sorted(p.name for p in written) == ["flame-auth-28080.svg", "flame-posts-28081.svg"]
    assert all(p.read_text().startswith("<?xml") for p in written)


def test_nothing_is_recorded_when_the_run_ends_first(tmp_path: Path) -> None:
    flames = FlameGraphs(lambda: [], [], tmp_path, 3600, 60)
    flames.start()
    assert flames.stop() == []
    assert list(tmp_path.iterdir()) == []
