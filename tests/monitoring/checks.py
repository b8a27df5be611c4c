"""The checks the monitoring tests apply to deploy/: each names the file and line it rejects.

Shared by the static tests (every committed file) and the tests that feed them broken input.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.rules.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.test.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/agora-social/agora/blob/main/docs/runbook.md#"
SEVERITIES = {"P1", "P2", "P3"}
DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: run `make monitoring-tools`"
)
needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool missing: run `make monitoring-tools`"
)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors(path: Path = RUNBOOK) -> set[str]:
    return {
        github_anchor(line.lstrip("#"))
        for line in path.read_text().splitlines()
        if line.startswith("#")
    }


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return 0


def alert_problems(path: Path, anchors: set[str]) -> list[str]:
    """`file:line: problem` for every alert without the required labels and annotations, or
    whose runbook_url does not point at a heading of docs/runbook.md."""
    text = path.read_text()
    problems = []
    for group in yaml.safe_load(text).get("groups", []):
        for rule in group.get("rules", []):
            if "alert" not in rule:
                continue
            name = rule["alert"]
            where = f"{path}:{_line_of(text, f'alert: {name}')}: {name}"
            labels, notes = rule.get("labels", {}), rule.get("annotations", {})
            if labels.get("severity") not in SEVERITIES:
                problems.append(f"{where}: severity must be one of {sorted(SEVERITIES)}")
            problems.extend(
                f"{where}: missing annotation {key}"
                for key in ("summary", "description", "runbook_url")
                if not notes.get(key)
            )
            url = notes.get("runbook_url", "")
            if url and not url.startswith(RUNBOOK_URL):
                problems.append(f"{where}: runbook_url must start with {RUNBOOK_URL}")
            elif url and url.removeprefix(RUNBOOK_URL) not in anchors:
                problems.append(f"{where}: no heading in docs/runbook.md for {url}")
    return problems


def alert_names(paths: list[Path]) -> set[str]:
    return {
        rule["alert"]
        for path in paths
        for group in yaml.safe_load(path.read_text()).get("groups", [])
        for rule in group.get("rules", [])
        if "alert" in rule
    }


def alert_test_coverage(paths: list[Path]) -> tuple[set[str], set[str]]:
    """(alerts with a firing case that checks `service` and `severity`, alerts with a case
    where they stay silent) across promtool test files."""
    firing, silent = set(), set()
    for path in paths:
        for test in yaml.safe_load(path.read_text()).get("tests", []):
            for case in test.get("alert_rule_test", []):
                expected = case.get("exp_alerts") or []
                if not expected:
                    silent.add(case["alertname"])
                elif all({"service", "severity"} <= set(a.get("exp_labels", {})) for a in expected):
                    firing.add(case["alertname"])
    return firing, silent


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "agora_dashboards", DEPLOY / "grafana" / "generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_dashboard(path: Path) -> dict[str, Any]:
    """The dashboard's JSON; a file that does not parse fails with its file and line."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{path}:{exc.lineno}: {exc.msg}") from None
    return data


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every Prometheus query of every panel (rows included)."""
    found: list[tuple[str, str]] = []
    panels = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))
        found.extend(
            (panel.get("title", "?"), target["expr"])
            for target in panel.get("targets", [])
            if target.get("expr")
        )
    return found


def substitute(expr: str, *, rate_interval: str, time_range: str) -> str:
    """Grafana's variables as the dashboards use them: $service/$instance are regexes whose
    All value is `.*`; the interval variables become durations."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__range", time_range)
        .replace("$service", ".*")
        .replace("$instance", ".*")
    )


def promql_problems(queries: list[tuple[str, str]], workdir: Path, source: Path) -> str:
    """promtool's verdict on queries wrapped as one recording rule each ('' when all parse)."""
    rules = {
        "groups": [
            {
                "name": "q",
                "rules": [
                    {
                        "record": f"panel_{i}",
                        "expr": substitute(e, rate_interval="1m", time_range="1h"),
                    }
                    for i, (_, e) in enumerate(queries)
                ],
            }
        ]
    }
    path = workdir / f"{source.stem}.queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run("promtool", "check", "rules", str(path))
    return "" if result.returncode == 0 else f"{source}: {result.stdout}{result.stderr}"
