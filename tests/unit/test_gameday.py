"""The game day's judgement: which notification answers a fault, which is for the wrong
service, and how a result is written down."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from agora.cli import app
from agora.gameday import SCENARIO_NAMES
from agora.gameday.report import markdown
from agora.gameday.runner import Result, find_notification, wrong_service
from agora.gameday.scenarios import SCENARIOS, Expect, one

EXPECT = [Expect("AgoraServiceDown", {"service": one("posts"), "instance": one("a:1")})]


def _note(at: float, status: str, receiver: str = "slack", **labels: str) -> dict[str, Any]:
    alert = {
        "status": status,
        "fingerprint": "f1",
        "labels": {"alertname": "AgoraServiceDown", **labels},
    }
    return {"received_at": at, "receiver": receiver, "payload": {"alerts": [alert]}}


def test_the_first_matching_firing_notification_after_the_fault_counts() -> None:
    notes = [
        _note(5, "firing", service="posts", instance="a:1"),  # before the fault
        _note(12, "firing", receiver="pagerduty-oncall", service="posts", instance="a:1"),
        _note(13, "firing", service="auth", instance="b:1"),
        _note(14, "firing", service="posts", instance="a:1"),
        _note(30, "resolved", service="posts", instance="a:1"),
    ]
    assert find_notification(notes, EXPECT, 10, "firing") == (14, notes[3]["payload"]["alerts"][0])
    resolved = find_notification(notes, EXPECT, 10, "resolved", "f1")
    assert resolved is not None
    assert resolved[0] == 30
    assert find_notification(notes, EXPECT, 10, "resolved", "other") is None
    assert wrong_service(notes, EXPECT, 10) == ["AgoraServiceDown{service=auth}"]


def test_a_result_without_its_alert_fails_and_says_why() -> None:
    result = Result("kill-instance", "SIGKILL", "fast", [EXPECT[0].describe()], requests=100)
    result.problems.append("no notification of AgoraServiceDown")
    assert not result.passed
    assert result.to_json()["passed"] is False
    text = markdown([result], {"started": "now", "command": "agora gameday", "timing": "fast",
                               "workers": 8, "websockets": 24})  # fmt: skip
    assert "| kill-instance | fast | MISSING |" in text
    assert "FAIL: no notification of AgoraServiceDown" in text


def test_every_scenario_of_the_issue_is_there() -> None:
    assert set(SCENARIOS) == {
        "kill-instance", "stop-postgres", "stop-redis", "sentinel-failover",
        "gateway-latency", "gateway-errors", "pool-exhaustion", "websocket-disconnect",
    }  # fmt: skip


def test_an_unknown_scenario_is_refused_with_the_list() -> None:
    result = CliRunner().invoke(app, ["gameday", "--fast", "-s", "meteor"])
    assert result.exit_code == 2
    assert "unknown scenario meteor" in result.output
    assert "kill-instance" in result.output


def test_the_command_lines_scenario_names_are_the_scenarios() -> None:
    assert tuple(SCENARIOS) == SCENARIO_NAMES
