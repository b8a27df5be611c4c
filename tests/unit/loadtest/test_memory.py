"""The soak's memory figures: per-process series, per-group sums, the slope in MiB/h."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest
from rich.console import Console

from agora.loadtest.memory import MemorySampler, Sample, label_of, slope_mib_per_h, summarise
from agora.loadtest.report import print_memory
from agora.loadtest.stack import Ports


def test_the_slope_is_the_least_squares_line_in_mib_per_hour() -> None:
    # Noise around a rising line: the fit says 21 MiB/h where end - start says 24.
    points = [(0.0, 100.0), (600.0, 105.0), (1200.0, 104.0), (1800.0, 112.0)]
    assert slope_mib_per_h(points) == pytest.approx(21.0, abs=0.01)
    assert slope_mib_per_h([(0.0, 100.0), (3600.0, 100.0)]) == 0.0
    assert slope_mib_per_h([(5.0, 100.0), (5.0, 200.0)]) is None


def test_the_second_half_slope_leaves_out_the_arrival_of_users() -> None:
    # Memory grows while users arrive (first half), then stays flat: no leak.
    samples = [
        Sample(t, "realtime:28082", "realtime", rss, rss)
        for t, rss in (
            (0, 90.0),
            (600, 120.0),
            (1200, 150.0),
            (1800, 150.5),
            (2400, 150.0),
            (3600, 150.2),
        )
    ]
    series = summarise(samples)["processes_rss"]["realtime:28082"]
    assert series["slope_mib_per_h"] > 50
    assert abs(series["late_slope_mib_per_h"]) < 1


def test_groups_sum_their_processes_at_each_moment() -> None:
    samples = [
        Sample(0.0, "postgresql:10", "postgresql", 50.0, 20.0),
        Sample(0.0, "postgresql:11", "postgresql", 50.0, 20.0),
        Sample(0.0, "posts:28081", "posts", 90.0, 80.0),
        Sample(3600.0, "postgresql:10", "postgresql", 52.0, 21.0),
        Sample(3600.0, "postgresql:11", "postgresql", 52.0, 21.0),
        Sample(3600.0, "posts:28081", "posts", 95.0, 85.0),
    ]
    summary = summarise(samples)
    assert summary["groups_pss"]["postgresql"] == {
        "start_mib": 40.0,
        "end_mib": 42.0,
        "max_mib": 42.0,
        "samples": 2,
        "slope_mib_per_h": 2.0,
        "late_slope_mib_per_h": None,  # one moment in the second half: no line
    }
    assert summary["groups_rss"]["postgresql"]["end_mib"] == 104.0
    assert summary["processes_rss"]["posts:28081"]["slope_mib_per_h"] == 5.0
    assert set(summary["processes_rss"]) == {"postgresql:10", "postgresql:11", "posts:28081"}
    console = Console(record=True, width=120)
    print_memory(console, summary)
    screen = console.export_text()
    assert "posts:28081" in screen
    assert "+5.0" in screen


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(  # our own interpreter, fixed argv
        [sys.executable, "-c", "import time; time.sleep(60)", "serve", "posts", "--port", "28081"]
    )
    yield process
    process.kill()
    process.wait()


def test_the_sampler_follows_the_run_processes_from_start_to_stop(
    child: subprocess.Popen[bytes],
) -> None:
    # The child's command line looks like a posts instance on port 28081: it is labelled by
    # its port, and the sampler has a first and a last sample even inside one interval.
    assert label_of(psutil.Process(child.pid), "posts") == "posts:28081"
    sampler = MemorySampler(lambda: [child.pid], [], interval_s=3600)
    sampler.start()
    time.sleep(0.3)  # samples are timed to 0.1 s: the last one is a moment of its own
    summary = sampler.stop()
    series = summary["processes_rss"]["posts:28081"]
    assert series["samples"] == 2
    assert series["start_mib"] > 1
    assert os.getpid() not in {s["label"] for s in summary["samples"]}


def test_a_run_beside_others_moves_the_services_and_their_jwks_url() -> None:
    assert Ports().env() == {}
    assert Ports().up_args() == []
    moved = Ports(28080, 28446)
    assert moved.up_args() == ["--port-base", "28080"]
    assert moved.env() == {
        "AGORA_AUTH_JWKS_URL": "http://127.0.0.1:28080/api/v1/auth/.well-known/jwks.json"
    }
