"""k6's own figures while it runs, kept in case it never writes its summary.

k6 1.1 can hang after its last iteration (a WebSocket teardown that deadlocks,
grafana/k6#4598), and the harness then stops it: no ``handleSummary``, so no client-side
figures. Its REST API (``--address``) serves every metric so far, sub-metrics included. The
harness keeps each process's latest answer, and a process that leaves no summary is reported
from it. What the API cannot give is said where it is used: trends carry avg, min, med, max,
p(90) and p(95) (no p(99), no count); a rate is a fraction only, so it is weighted by the
process's requests to merge; a threshold is k6's running verdict on the whole metric
(``tainted``), not per expression.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agora.loadtest.background import Background
from agora.loadtest.report import DISPLAY_ONLY

LIVE_VERDICT = "k6's running verdict"  # the threshold label of a metric judged from the API
# The scripts' per-group latencies carry only the display threshold (k6/lib/agora.js), which
# the API does not name: without this they would show as passed verdicts.
DISPLAYED_ONLY = "http_req_duration{group:"


def summary_from_live(answer: dict[str, Any]) -> dict[str, Any]:
    """The ``handleSummary`` shape (``{"metrics": {name: {type, values, thresholds}}}``) from a
    kept ``/v1/metrics`` answer."""
    by_name = {item["id"]: item["attributes"] for item in answer.get("data", [])}
    requests = float(by_name.get("http_reqs", {}).get("sample", {}).get("count", 0.0))
    metrics: dict[str, Any] = {}
    for name, attributes in by_name.items():
        values = dict(attributes.get("sample", {}))
        if attributes["type"] == "rate":
            rate = float(values.get("rate", 0.0))
            values.update(passes=rate * requests, fails=(1.0 - rate) * requests)
        tainted = attributes.get("tainted")
        if tainted is None:
            thresholds = {}
        elif name.startswith(DISPLAYED_ONLY):
            thresholds = {DISPLAY_ONLY: {"ok": True}}  # k6/lib/agora.js: shown, never judged
        else:
            thresholds = {LIVE_VERDICT: {"ok": not tainted}}
        metrics[name] = {"type": attributes["type"], "values": values, "thresholds": thresholds}
    return {"metrics": metrics}


@dataclass
class LiveMetrics:
    """Polls each k6 process's ``/v1/metrics`` every ``interval_s``; the latest answer of each
    is written to its path, so the last one before a hang survives the kill."""

    targets: list[tuple[str, Path]]  # (API address, where its latest answer goes)
    interval_s: float = 15.0
    _worker: Background = field(default_factory=lambda: Background("k6-live-metrics"))

    def _poll(self, client: httpx.Client) -> None:
        for address, path in self.targets:
            try:
                answer = client.get(f"http://{address}/v1/metrics").json()
            except (httpx.HTTPError, ValueError):
                continue  # not up yet, or ended: the previous answer stands
            answer["taken_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            staged = path.with_suffix(".tmp")
            staged.write_text(json.dumps(answer))
            staged.replace(path)  # a kill mid-write never leaves half a file

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._worker.stopping.wait(self.interval_s):
                self._poll(client)

    def start(self) -> None:
        self._worker.start(self._loop)

    def stop(self) -> None:
        self._worker.stop()
