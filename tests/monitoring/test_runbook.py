"""docs/runbook.md stays usable: every PromQL query in it parses (promtool), every section the
issue asks for is there, and the commands it names exist in this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.monitoring.checks import ROOT, RUNBOOK, github_anchor, needs_promtool, promql_problems

TEXT = RUNBOOK.read_text()


def promql_blocks(text: str) -> list[tuple[str, str]]:
    """(where, query) for each query of each ```promql block; a query may span lines (its
    continuation lines start with whitespace); `#` lines are comments."""
    queries: list[tuple[str, str]] = []
    for block in re.finditer(r"```promql\n(.*?)```", text, re.S):
        first = text[: block.start()].count("\n") + 2
        line = first
        current: list[str] = []
        for offset, raw in enumerate(block.group(1).splitlines()):
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0].isspace() and current:
                current.append(raw.strip())
                continue
            if current:
                queries.append((f"runbook.md:{line}", " ".join(current)))
            current, line = [raw.strip()], first + offset
        if current:
            queries.append((f"runbook.md:{line}", " ".join(current)))
    return queries


def test_the_runbook_has_promql_to_check() -> None:
    assert len(promql_blocks(TEXT)) >= 20


@needs_promtool
def test_every_promql_query_of_the_runbook_parses(tmp_path: Path) -> None:
    problems = promql_problems(promql_blocks(TEXT), tmp_path, RUNBOOK)
    assert not problems, problems


@needs_promtool
def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    broken = "```promql\nsum by (service (rate(agora_http_requests_total[5m]))\n```\n"
    assert promql_problems(promql_blocks(broken), tmp_path, RUNBOOK)


@pytest.mark.parametrize(
    "heading",
    [
        "The system",
        "What each loss does to users",
        "Deploying and rolling back",
        "Rolling back",
        "Incident response",
        "The first 5 minutes",
        "Status updates",
        "Postmortem template",
        "On-call and escalation",
        "High latency",
        "Memory growth",
        "Database connection problems",
        "WebSocket disconnections",
        "Redis failover",
        "Rate-limit complaints",
        "A compromised signing key",
        "Game day",
        "Backup and recovery",
    ],
)
def test_the_sections_the_issue_asks_for_are_there(heading: str) -> None:
    assert re.search(rf"^#+ {re.escape(heading)}$", TEXT, re.M), heading


def test_the_contents_links_point_at_headings() -> None:
    anchors = {
        github_anchor(line.lstrip("#")) for line in TEXT.splitlines() if line.startswith("#")
    }
    links = re.findall(r"\]\(#([^)]+)\)", TEXT)
    assert links
    assert set(links) <= anchors


def test_the_architecture_diagram_is_mermaid() -> None:
    assert "```mermaid\nflowchart" in TEXT


def test_the_files_and_scripts_it_names_exist() -> None:
    named = set(re.findall(r"`((?:scripts|deploy|docs|\.github/workflows)/[\w./-]+)`", TEXT))
    named |= {"docker-compose.production.yml", "deploy/oncall.yml"}
    missing = {path for path in named if path != "docs/gameday.md" and not (ROOT / path).exists()}
    assert not missing, missing
    assert re.search(r"\(gameday\.md\)", TEXT), "the game-day section links docs/gameday.md"


def test_severities_are_the_alert_labels() -> None:
    for severity in ("P1", "P2", "P3"):
        assert f"| **{severity}** |" in TEXT
