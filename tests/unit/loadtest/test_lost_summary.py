"""A k6 that hung or was killed leaves no summary: the harness's own figures still land."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import typer
from rich.console import Console

from agora.loadtest.__main__ import _Outcome, _report
from agora.loadtest.integrity import Integrity
from agora.loadtest.runner import plan_shards


def test_memory_cpu_timeline_and_integrity_are_written_without_k6s_summary(
    tmp_path: Path,
) -> None:
    shards = plan_shards(10, 1, ["https://127.0.0.1:28443"], tmp_path)  # no summary-0.json
    series = {"start_mib": 90.0, "end_mib": 116.0, "max_mib": 116.0, "slope_mib_per_h": 2.0}
    memory = {"groups_pss": {"posts": series}}
    timeline: dict[str, object] = {"windows": [], "breaking_point": None}
    outcome = _Outcome(shards, [2], {"posts": 120.5}, Integrity(1_234, 0, 20, 0), memory, timeline)
    console = Console(record=True, width=120)
    with pytest.raises(typer.Exit) as exited:
        _report(console, tmp_path, "soak", outcome)
    assert exited.value.exit_code == 1
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["memory"] == memory
    assert written["timeline"] == timeline
    assert written["cpu_seconds"] == {"posts": 120.5}
    assert written["lost_writes"] == 0
    assert written["k6_exit_codes"] == [2]
    screen = console.export_text()
    assert "1,234 acknowledged posts, 0 missing in PostgreSQL" in screen
    assert "k6 wrote no summary (exit [2])" in screen


@pytest.mark.parametrize("code", [-9, 105])  # killed; or ended on the deadline's Ctrl+C
def test_a_k6_stopped_at_its_deadline_is_named_as_such(tmp_path: Path, code: int) -> None:
    shards = plan_shards(10, 1, ["https://127.0.0.1:28443"], tmp_path)
    outcome = _Outcome(shards, [code], {}, Integrity(0, 0, 0, 0), {}, {})
    console = Console(record=True, width=160)
    with pytest.raises(typer.Exit):
        _report(console, tmp_path, "soak", outcome)
    screen = console.export_text()
    assert f"past the run's length and was stopped (exit [{code}])" in screen
    assert "grafana/k6#4598" in screen


@pytest.mark.parametrize(("counted", "lost"), [(6, 0), (5, 0), (8, 2)])
def test_only_a_201_the_ledger_does_not_name_counts_as_lost(
    tmp_path: Path, counted: int, lost: int
) -> None:
    # The ledger names 6 posts, all found. A counter below it is k6 stopping between the
    # log line and its sample (seen: 70,102 against 70,103 in the hour's soak); above it,
    # some 201s cannot be checked.
    shards = plan_shards(10, 1, ["https://127.0.0.1:28443"], tmp_path)
    counter = {"type": "counter", "values": {"count": counted, "rate": 0.1}}
    shards[0].summary.write_text(json.dumps({"metrics": {"posts_created": counter}}))
    outcome = _Outcome(shards, [0], {}, Integrity(6, 0, 6, 0), {}, {})
    console = Console(record=True, width=160)
    failing = pytest.raises(typer.Exit) if lost else contextlib.nullcontext()
    with failing:
        _report(console, tmp_path, "soak", outcome)
    assert json.loads((tmp_path / "summary.json").read_text())["lost_writes"] == lost
    assert ("cannot vouch for the rest" in console.export_text()) == (lost > 0)
