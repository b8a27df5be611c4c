"""Dashboards as code: the committed JSON is the generator's output, reads back through the
SDK, and every panel's query parses; a broken dashboard names its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.monitoring.checks import (
    DASHBOARD_DIR,
    load_dashboard,
    load_generator,
    needs_promtool,
    panel_queries,
    promql_problems,
)

EXPECTED = {"service-overview.json", "infrastructure.json", "business.json", "database.json"}


def test_committed_json_is_what_the_generator_makes() -> None:
    rendered = load_generator().render()
    assert set(rendered) == EXPECTED
    for name, text in rendered.items():
        committed = (DASHBOARD_DIR / name).read_text()
        assert committed == text, f"{name} is stale: run `make dashboards` and commit"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_reads_back_and_has_what_operators_expect(name: str) -> None:
    data = load_dashboard(DASHBOARD_DIR / name)
    board = Dashboard.from_json(data)
    assert board.uid
    assert board.title is not None
    assert board.title.startswith("Agora / ")
    assert panel_queries(data), "a dashboard without queries"
    annotations = [a["name"] for a in data["annotations"]["list"]]
    assert "Deployments" in annotations
    for panel in data["panels"]:
        if panel["type"] != "alertlist":
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}


def test_the_overview_has_an_alert_list() -> None:
    data = load_dashboard(DASHBOARD_DIR / "service-overview.json")
    assert "alertlist" in [p["type"] for p in data["panels"]]


@needs_promtool
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_panel_query_parses(name: str, tmp_path: Path) -> None:
    path = DASHBOARD_DIR / name
    assert promql_problems(panel_queries(load_dashboard(path)), tmp_path, path) == ""


@needs_promtool
def test_a_panel_query_that_does_not_parse_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "broken.json"
    problems = promql_problems([("Requests", "sum(rate(x[$__rate_interval])")], tmp_path, source)
    assert str(source) in problems
    assert "parse error" in problems


def test_a_dashboard_that_does_not_parse_fails_with_file_and_line(tmp_path: Path) -> None:
    good = json.loads((DASHBOARD_DIR / "business.json").read_text())
    broken = tmp_path / "business.json"
    broken.write_text(
        json.dumps(good, indent=2).replace('"title": "Agora / Business",', '"title": ,')
    )
    line = next(
        n for n, text in enumerate(broken.read_text().splitlines(), 1) if '"title": ,' in text
    )
    with pytest.raises(AssertionError, match=rf"{broken}:{line}: Expecting value"):
        load_dashboard(broken)
