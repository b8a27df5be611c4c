"""Prometheus config and rules: promtool's checks, its unit tests, and the house rules for
alerts (labels, annotations, a runbook section per alert)."""

from __future__ import annotations

from pathlib import Path

from agora.config import Settings
from agora.devstack.monitoring import render_prometheus
from tests.monitoring.checks import (
    RULE_TESTS,
    RULES,
    RUNBOOK,
    alert_names,
    alert_problems,
    alert_test_coverage,
    github_anchor,
    needs_promtool,
    run,
    runbook_anchors,
)

pytestmark = needs_promtool

PORTS = {"prometheus": 19090, "alertmanager": 19093}


def test_every_rules_file_is_valid_and_loaded_by_the_rendered_config(tmp_path: Path) -> None:
    config = render_prometheus(
        Settings(monitoring_scrape_interval_s=1), tmp_path, PORTS, {"node-exporter"}
    )
    result = run("promtool", "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    for rules in RULES:
        assert f"Checking {rules}" in result.stdout, f"{rules} is not loaded by prometheus.yml"
    assert "scrape_interval: 1s" in config.read_text()
    assert "postgres" not in [line.strip() for line in config.read_text().splitlines()]


def test_promtool_unit_tests_pass_for_every_test_file() -> None:
    assert RULE_TESTS, "no deploy/prometheus/tests/*.test.yml"
    result = run("promtool", "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    alerts = alert_names(RULES)
    firing, silent = alert_test_coverage(RULE_TESTS)
    assert alerts - firing == set(), "alerts without a firing case checking service+severity"
    assert alerts - silent == set(), "alerts without a case where they stay silent"


def test_every_alert_has_labels_annotations_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    problems = [p for path in RULES for p in alert_problems(path, anchors)]
    assert problems == []


def test_github_anchors_follow_githubs_rules() -> None:
    assert github_anchor(" AgoraServiceDown") == "agoraservicedown"
    assert github_anchor("Backup and recovery") == "backup-and-recovery"
    assert github_anchor("What `agora up` starts (dev)") == "what-agora-up-starts-dev"
    assert "agoraservicedown" in runbook_anchors(RUNBOOK)


def test_an_alert_without_runbook_section_or_severity_is_named_with_file_and_line(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "broken.rules.yml"
    rules.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Nameless\n        expr: up == 0\n"
        "        labels: {severity: critical}\n        annotations:\n          summary: s\n"
        "          description: d\n          runbook_url: "
        "https://github.com/agora-social/agora/blob/main/docs/runbook.md#no-such-section\n"
    )
    problems = alert_problems(rules, runbook_anchors())
    assert problems == [
        f"{rules}:4: Nameless: severity must be one of ['P1', 'P2', 'P3']",
        f"{rules}:4: Nameless: no heading in docs/runbook.md for "
        "https://github.com/agora-social/agora/blob/main/docs/runbook.md#no-such-section",
    ]


def test_a_rule_that_does_not_parse_fails_with_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "broken.rules.yml"
    rules.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Bad\n        expr: rate(up[5m]\n"
    )
    result = run("promtool", "check", "rules", str(rules))
    assert result.returncode != 0
    assert str(rules) in result.stdout + result.stderr
    assert "5:15" in result.stderr  # line 5, column of the unclosed call

    yaml_broken = tmp_path / "indent.rules.yml"
    yaml_broken.write_text('groups:\n  - name: g\n    rules:\n      - alert: "Unclosed\n')
    result = run("promtool", "check", "rules", str(yaml_broken))
    assert result.returncode != 0
    assert str(yaml_broken) in result.stderr
    assert "line 4" in result.stderr
