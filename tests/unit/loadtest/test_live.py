"""A k6 that never writes its summary is reported from its REST API's last answer."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console

from agora.devstack.embedded import free_port
from agora.loadtest.__main__ import _Outcome, _report
from agora.loadtest.integrity import Integrity
from agora.loadtest.live import LIVE_VERDICT, LiveMetrics, summary_from_live
from agora.loadtest.report import verdicts
from agora.loadtest.runner import k6_binary, plan_shards

GATEWAY = "https://127.0.0.1:28443"


def _metric(
    name: str, kind: str, sample: dict[str, float], tainted: bool | None = None
) -> dict[str, Any]:
    attributes = {"type": kind, "contains": "default", "tainted": tainted, "sample": sample}
    return {"type": "metrics", "id": name, "attributes": attributes}


ANSWER = {
    "data": [
        _metric("http_reqs", "counter", {"count": 2_000, "rate": 40.0}),
        _metric("http_req_failed", "rate", {"rate": 0.25}, tainted=True),
        _metric("checks", "rate", {"rate": 0.9}),
        _metric("http_req_duration{kind:api}", "trend", {"p(95)": 180.0}, tainted=False),
        _metric(
            "http_req_duration{group:api}",
            "trend",
            {"avg": 90.0, "min": 2.0, "med": 60.0, "max": 900.0, "p(90)": 150.0, "p(95)": 180.0},
            tainted=False,
        ),
    ],
    "taken_at": "2026-12-03T07:00:00Z",
}


def test_rates_are_weighted_by_the_processs_requests_and_tainted_is_the_verdict() -> None:
    metrics = summary_from_live(ANSWER)["metrics"]
    failed = metrics["http_req_failed"]
    assert failed["values"]["passes"] == pytest.approx(500.0)
    assert failed["values"]["fails"] == pytest.approx(1_500.0)
    assert failed["thresholds"] == {LIVE_VERDICT: {"ok": False}}
    assert metrics["http_req_duration{kind:api}"]["thresholds"] == {LIVE_VERDICT: {"ok": True}}
    assert metrics["http_req_duration{group:api}"]["values"]["p(95)"] == 180.0
    assert metrics["checks"]["thresholds"] == {}  # no threshold on it: judged by nobody


def test_a_route_groups_display_threshold_is_no_verdict() -> None:
    shown = _metric("http_req_duration{group:feed}", "trend", {"p(95)": 9_000.0}, tainted=False)
    metrics = summary_from_live({"data": [shown]})["metrics"]
    assert verdicts(metrics) == []  # only the display threshold: nothing judged, nothing passed


def test_a_shard_without_a_summary_is_reported_from_its_live_answer(tmp_path: Path) -> None:
    shards = plan_shards(20, 2, [GATEWAY], tmp_path)
    done = {"type": "counter", "values": {"count": 1_000, "rate": 20.0}}
    shards[0].summary.write_text(json.dumps({"metrics": {"http_reqs": done}}))
    shards[1].live.write_text(json.dumps(ANSWER))  # stopped at its deadline: no summary
    outcome = _Outcome(shards, [0, -2], {}, Integrity(0, 0, 0, 0), {}, {})
    console = Console(record=True, width=200)
    with pytest.raises(typer.Exit) as exited:
        _report(console, tmp_path, "stress", outcome)
    assert exited.value.exit_code == 1  # not judged by k6 to the end: never a pass
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["requests"] == 3_000
    assert written["error_rate"] == pytest.approx(0.25)  # shard 0 had no failed request
    assert written["k6_from_live_metrics"] == [1]
    screen = console.export_text()
    assert "k6 process(es) [1] wrote no summary" in screen
    assert "│ api   │        — │ 60.0 │ 180.0 │   — │" in screen  # what the API cannot give: —


@pytest.mark.timeout(60)
def test_the_last_answer_of_a_killed_k6_survives_it(tmp_path: Path) -> None:
    script = tmp_path / "busy.js"
    script.write_text(
        "import { Trend } from 'k6/metrics';\nimport { sleep } from 'k6';\n"
        "const waited = new Trend('waited', true);\n"
        "export const options = { vus: 2, duration: '60s',"
        " thresholds: { waited: ['p(95)<1000'] } };\n"
        "export default function () { waited.add(5); sleep(0.05); }\n"
    )
    address, kept = f"127.0.0.1:{free_port()}", tmp_path / "live.json"
    argv = [k6_binary(), "run", "--quiet", "--no-usage-report", "--address", address, str(script)]
    k6 = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    live = LiveMetrics([(address, kept)], interval_s=0.5)
    live.start()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not kept.exists():
            time.sleep(0.2)
        time.sleep(3.0)  # a later answer: samples in it, thresholds judged (every 2 s)
    finally:
        k6.kill()  # what the harness's last stop step does to a hung k6
        k6.wait()
        live.stop()
    metrics = summary_from_live(json.loads(kept.read_text()))["metrics"]
    assert metrics["waited"]["values"]["p(95)"] == pytest.approx(5.0)
    assert metrics["waited"]["thresholds"] == {LIVE_VERDICT: {"ok": True}}
    assert metrics["iterations"]["values"]["count"] > 0
