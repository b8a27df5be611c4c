"""Alertmanager: the production file and the one `agora up --monitoring` renders are valid,
and each severity reaches the receivers the routing promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agora.config import Settings
from agora.devstack.monitoring import render_alertmanager
from tests.monitoring.checks import DEPLOY, needs_amtool, run

pytestmark = needs_amtool

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def test_production_config_is_valid_and_takes_secrets_from_files() -> None:
    result = run("amtool", "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    text = CONFIG.read_text()
    for key in ("slack_api_url_file", "routing_key_file", "smtp_auth_password_file"):
        assert key in text
    for inline in ("api_url:", "routing_key:", "auth_password:", "hooks.slack.com"):
        assert inline not in text, f"a secret written inline ({inline})"


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=P1", "alertname=AgoraServiceDown"], "slack,pagerduty-oncall"),
        # Business hours go to the team, the rest to on-call (time intervals: amtool ignores
        # them, so both P2 receivers are listed).
        (["severity=P2", "alertname=AgoraHighErrorRate"], "slack,pagerduty-team,pagerduty-oncall"),
        (["severity=P3", "alertname=AgoraDiskSpaceLow"], "slack,email-digest"),
    ],
)
def test_each_severity_reaches_its_receivers(labels: list[str], receivers: str) -> None:
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receivers}",
        "service=posts",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_receiver_is_refused() -> None:
    """The assertion above can fail: a P3 alert does not page."""
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=slack,pagerduty-oncall",
        "severity=P3",
        "service=posts",
    )
    assert result.returncode == 1


def test_a_down_service_does_not_also_page_for_its_error_rate_and_latency() -> None:
    rules = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    down = next(r for r in rules if r["source_matchers"] == ['alertname="AgoraServiceDown"'])
    assert down["equal"] == ["service"]
    assert "AgoraHighErrorRate" in down["target_matchers"][0]
    assert "AgoraHighLatency" in down["target_matchers"][0]


def test_rendered_config_keeps_the_routing_and_sends_every_receiver_to_the_webhook(
    tmp_path: Path,
) -> None:
    path = render_alertmanager(Settings(monitoring_group_wait_s=0), tmp_path, "http://h:1")
    result = run("amtool", "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = yaml.safe_load(path.read_text())
    original = yaml.safe_load(CONFIG.read_text())
    assert rendered["inhibit_rules"] == original["inhibit_rules"]
    assert rendered["time_intervals"] == original["time_intervals"]
    assert [r["name"] for r in rendered["receivers"]] == [r["name"] for r in original["receivers"]]
    for receiver in rendered["receivers"]:
        assert receiver["webhook_configs"] == [{"url": f"http://h:1/{receiver['name']}"}]
    assert rendered["route"]["group_wait"] == "0s"
    assert {r["group_wait"] for r in rendered["route"]["routes"]} == {"0s"}
    routed = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={path}",
        "--verify.receivers=slack,pagerduty-oncall",
        "severity=P1",
        "service=auth",
    )
    assert routed.returncode == 0, routed.stdout


def test_a_broken_config_fails_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text("route:\n  receiver: slack\n receivers: []\n")
    result = run("amtool", "check-config", str(broken))
    assert result.returncode != 0
    assert str(broken) in result.stdout + result.stderr
    assert "line" in result.stdout + result.stderr


ALERT: dict[str, Any] = {
    "status": "firing",
    "labels": {"alertname": "AgoraServiceDown", "severity": "P1", "service": "posts"},
    "annotations": {
        "summary": "posts instance 127.0.0.1:8084 is down",
        "description": "Prometheus could not scrape posts.",
        "runbook_url": "https://github.com/agora-social/agora/blob/main/docs/runbook.md#agoraservicedown",
    },
    "startsAt": "2026-12-01T21:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    "template",
    ["agora.slack.title", "agora.slack.text", "agora.email.html", "agora.pagerduty.description"],
)
def test_templates_carry_the_summary_and_the_runbook_link(template: str, tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text(
        json.dumps(
            {
                "receiver": "slack",
                "status": "firing",
                "alerts": [ALERT],
                "groupLabels": {"alertname": "AgoraServiceDown", "service": "posts"},
                "commonLabels": ALERT["labels"],
                "commonAnnotations": ALERT["annotations"],
                "externalURL": "http://127.0.0.1:9093",
            }
        )
    )
    result = run(
        "amtool",
        "template",
        "render",
        f"--template.glob={DEPLOY / 'alertmanager' / 'templates' / '*.tmpl'}",
        f"--template.data={data}",
        f'--template.text={{{{ template "{template}" . }}}}',
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    if template == "agora.slack.title":
        assert text.strip() == "[FIRING:1] P1 AgoraServiceDown (posts)"
    else:
        assert "posts instance 127.0.0.1:8084 is down" in text
    if template in ("agora.slack.text", "agora.email.html"):
        assert ALERT["annotations"]["runbook_url"] in text
