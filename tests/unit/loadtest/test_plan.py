"""How users are split over k6 processes, source addresses and gateways."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import patch

from typer.testing import CliRunner

from agora.loadtest.__main__ import app
from agora.loadtest.runner import K6_DIR, local_ips, plan_shards, seconds, wait_until
from agora.loadtest.scenarios import SCENARIOS


def test_every_user_in_exactly_one_process_with_its_own_addresses(tmp_path: Path) -> None:
    gateways = ["https://127.0.0.1:8443", "https://127.0.0.1:18443"]
    shards = plan_shards(10_000, SCENARIOS["stress"].processes, gateways, tmp_path)
    assert len(shards) == 4  # 10,000 users: 2,500 per process, under 20,000 descriptors
    covered = [u for s in shards for u in range(s.offset, s.offset + s.users)]
    assert covered == list(range(10_000))
    assert {s.gateway for s in shards} == set(gateways)
    assert local_ips(0, 2_500) == "127.20.0.1-127.20.9.196"
    assert local_ips(3, 300) == "127.23.0.1-127.23.1.44"


def test_smoke_and_load_need_one_process() -> None:
    assert SCENARIOS["smoke"].processes == SCENARIOS["load"].processes == 1


def test_an_unknown_scenario_is_refused_with_the_choices() -> None:

    result = CliRunner().invoke(app, ["spike"])
    assert result.exit_code == 2
    assert "unknown scenario 'spike': choose one of smoke, load, stress, soak" in result.output


def test_each_scenarios_length_is_its_k6_scripts_default() -> None:
    """The harness's deadline for k6 is the scenario's length plus a grace."""
    for name, scenario in SCENARIOS.items():
        script = (K6_DIR / f"{name}.js").read_text()
        found = re.search(r"duration: '([^']+)'", script)
        assert found is not None, name
        assert found[1] == scenario.duration, name
        assert seconds(scenario.duration) > 0


def test_a_bad_duration_is_refused_before_anything_starts() -> None:
    result = CliRunner().invoke(app, ["smoke", "--duration", "ten minutes"])
    assert result.exit_code == 2
    assert "bad duration 'ten minutes': use a number with ms, s, m or h" in result.output


def test_a_k6_that_hangs_past_its_deadline_is_interrupted_then_killed() -> None:
    # Ignores SIGINT like the k6 stuck in a WebSocket teardown did; one that ends is untouched.
    stuck = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "print(flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stuck.stdout is not None
    stuck.stdout.readline()  # its handler is in place
    done = subprocess.Popen([sys.executable, "-c", "raise SystemExit(99)"])
    started = time.monotonic()
    with patch("agora.loadtest.runner.STOP_STEPS", ((signal.SIGINT, 0.5), (signal.SIGKILL, 5.0))):
        codes = wait_until([done, stuck], time.monotonic() + 1.0)
    stuck.stdout.close()
    assert codes == [99, -signal.SIGKILL]
    assert time.monotonic() - started < 10
