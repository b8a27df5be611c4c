"""The drain's bounds: settings defaults and guards, and the hard-limit watchdog."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from agora.config import ConfigError, Settings, load_settings
from tests.conftest import production_settings


def test_pre_drain_delay_defaults_to_0_in_development_and_5_in_production() -> None:
    assert Settings().effective_shutdown_delay_s == 0
    assert production_settings().effective_shutdown_delay_s == 5
    assert production_settings(shutdown_delay_s=2).effective_shutdown_delay_s == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"AGORA_SHUTDOWN_DELAY_S": "25", "AGORA_SHUTDOWN_TIMEOUT_S": "30"},
            "AGORA_SHUTDOWN_DELAY_S \\+ AGORA_SHUTDOWN_TIMEOUT_S",
        ),
        ({"AGORA_SHUTDOWN_DELAY_S": "-1"}, "AGORA_SHUTDOWN_DELAY_S"),
        (
            {"AGORA_HEALTH_CHECK_INTERVAL_S": "1", "AGORA_HEALTH_CHECK_TIMEOUT_S": "2"},
            "AGORA_HEALTH_CHECK_TIMEOUT_S must not exceed",
        ),
        ({"AGORA_HEALTH_CHECK_INTERVAL_S": "0"}, "AGORA_HEALTH_CHECK_INTERVAL_S"),
        ({"AGORA_WS_RECONNECT_JITTER_MS": "-5"}, "AGORA_WS_RECONNECT_JITTER_MS"),
    ],
)
def test_bad_drain_settings_are_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_the_watchdog_ends_a_stuck_process_with_status_1() -> None:
    stuck = (
        "import time\n"
        "from agora.shutdown import _start_watchdog\n"
        "_start_watchdog(0.3)\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", stuck], capture_output=True, timeout=20, check=False
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 15
    assert b"shutdown exceeded its hard limit" in result.stdout + result.stderr
