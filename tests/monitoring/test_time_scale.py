"""The fast game day's monitoring: deploy/'s rules and routing on a compressed clock."""

from __future__ import annotations

from pathlib import Path

import yaml

from agora.config import Settings
from agora.devstack.monitoring import render_alertmanager, render_prometheus, scale_expr
from tests.monitoring.checks import RULES, needs_promtool, run

PORTS = {"prometheus": 19090, "alertmanager": 19093}
FAST = Settings(monitoring_scrape_interval_s=1, monitoring_time_scale=1 / 15)


def test_windows_shrink_by_the_scale_but_never_below_two_envoy_flushes() -> None:
    assert scale_expr("rate(x[5m]) / rate(y[1h])", 1 / 15) == "rate(x[20s]) / rate(y[240s])"
    assert scale_expr("rate(x[1m])", 1 / 15) == "rate(x[10s])"
    assert scale_expr('x{le="0.5"} > 0.5', 1 / 15) == 'x{le="0.5"} > 0.5'


@needs_promtool
def test_fast_rules_are_valid_and_every_for_is_scaled(tmp_path: Path) -> None:
    config = render_prometheus(FAST, tmp_path, PORTS, set())
    rule_glob = yaml.safe_load(config.read_text())["rule_files"][0]
    assert rule_glob == str(tmp_path / "rules" / "*.rules.yml")
    rendered = sorted((tmp_path / "rules").glob("*.rules.yml"))
    assert [p.name for p in rendered] == sorted(p.name for p in RULES)
    result = run("promtool", "check", "rules", *map(str, rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    fast = {
        r["alert"]: r.get("for")
        for g in yaml.safe_load((tmp_path / "rules" / "agora.rules.yml").read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert fast["AgoraHighErrorRate"] == "20s"  # 5m / 15
    assert fast["AgoraHighLatency"] == "40s"  # 10m / 15
    assert fast["AgoraServiceDown"] is None  # immediate stays immediate


def test_production_loads_deploy_rules_as_they_are(tmp_path: Path) -> None:
    config = render_prometheus(Settings(), tmp_path, PORTS, set())
    assert yaml.safe_load(config.read_text())["rule_files"][0].endswith(
        "deploy/prometheus/rules/*.rules.yml"
    )
    assert not (tmp_path / "rules").exists()


def test_fast_routing_shortens_group_intervals(tmp_path: Path) -> None:
    settings = Settings(monitoring_group_wait_s=0, monitoring_time_scale=1 / 15)
    route = yaml.safe_load(
        render_alertmanager(settings, tmp_path, "http://127.0.0.1:1").read_text()
    )["route"]
    assert (route["group_wait"], route["group_interval"]) == ("0s", "20s")
    p3 = next(r for r in route["routes"] if r.get("matchers") == ['severity="P3"'])
    assert p3["group_interval"] == "2880s"  # 12 h / 15
