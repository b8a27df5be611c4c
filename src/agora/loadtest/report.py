"""The k6 processes' summaries as one: a JSON file and a one-screen table, pass/fail per
threshold.

Percentiles cannot be merged from summaries, so a trend's percentile is the worst process's:
an upper bound of the whole run's (if no process has more than 5% above x, neither has the
whole). A threshold passes when it passed in every process (each checked its own share).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

Metrics = dict[str, dict[str, Any]]
DISPLAY_ONLY = "max>=0"  # k6/lib/agora.js: keeps a sub-metric in the summary, judges nothing
# One screen row per PostgreSQL backend (or per harness process) would fill the screen.
SCREEN_BY_GROUP_ONLY = ("postgresql:", "other:")


@dataclass(frozen=True)
class Verdict:
    metric: str
    threshold: str
    value: float | None
    ok: bool


def merge(summaries: list[dict[str, Any]]) -> Metrics:
    merged: Metrics = {}
    for summary in summaries:
        for name, metric in summary["metrics"].items():
            into = merged.setdefault(name, {"type": metric["type"], "values": {}, "thresholds": {}})
            values = into["values"]
            for key, value in metric["values"].items():
                if metric["type"] == "trend" and key != "count":
                    values[key] = value if key not in values else max(values[key], value)
                elif key in ("passes", "fails", "count") or metric["type"] == "counter":
                    values[key] = values.get(key, 0) + value
                elif metric["type"] == "gauge":
                    values[key] = max(values.get(key, value), value)
            if metric["type"] == "rate":
                total = values.get("passes", 0) + values.get("fails", 0)
                values["rate"] = values.get("passes", 0) / total if total else 0.0
            for expression, result in metric.get("thresholds", {}).items():
                previous = into["thresholds"].get(expression, {"ok": True})
                into["thresholds"][expression] = {"ok": previous["ok"] and result["ok"]}
    return merged


def verdicts(metrics: Metrics) -> list[Verdict]:
    found = []
    for name, metric in sorted(metrics.items()):
        for expression, result in metric["thresholds"].items():
            if expression == DISPLAY_ONLY:
                continue
            stat = re.match(r"^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)", expression)
            key = stat.group(1) if stat else ""
            value = metric["values"].get(key)
            found.append(Verdict(name, expression, value, bool(result["ok"])))
    return found


def _value(metrics: Metrics, name: str, key: str) -> float:
    return float(metrics.get(name, {}).get("values", {}).get(key, 0.0))


def write_summary(  # noqa: PLR0913  # keyword-only: each is one part of the document
    metrics: Metrics,
    out: Path,
    *,
    scenario: str,
    lost_writes: int | None,
    exit_codes: list[int],
    cpu_seconds: dict[str, float],
    memory: dict[str, Any] | None = None,
    timeline: dict[str, Any] | None = None,
    caches: dict[str, Any] | None = None,
    from_live: list[int] | None = None,
) -> dict[str, Any]:
    document = {
        "scenario": scenario,
        "k6_exit_codes": exit_codes,
        # k6 processes reported from their live metrics (agora.loadtest.live), not a summary
        "k6_from_live_metrics": from_live or [],
        "lost_writes": lost_writes,
        "requests": _value(metrics, "http_reqs", "count"),
        "requests_per_s": _value(metrics, "http_reqs", "rate"),
        "error_rate": _value(metrics, "http_req_failed", "rate"),
        "rate_limited": _value(metrics, "rate_limited", "count"),
        "thresholds": [v.__dict__ for v in verdicts(metrics)],
        "cpu_seconds": cpu_seconds,
        "memory": memory or {},
        "timeline": timeline or {},
        "caches": caches or {},
        "metrics": metrics,
    }
    (out / "summary.json").write_text(json.dumps(document, indent=2))
    return document


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _slope(value: float | None) -> str:
    return "—" if value is None else f"{value:+,.1f}"


def print_memory(console: Console, memory: dict[str, Any]) -> None:
    """Memory per process group (PSS, so shared pages count once) and per process (RSS):
    start, end, and the least-squares slope over the run."""
    table = Table(title="Memory (MiB; slope in MiB/h)", title_justify="left")
    for column in ("process", "kind", "start", "end", "max", "slope", "2nd half"):
        table.add_column(column, justify="left" if column in ("process", "kind") else "right")
    for kind, key in (("group PSS", "groups_pss"), ("RSS", "processes_rss")):
        for name, series in memory.get(key, {}).items():
            if kind == "RSS" and name.startswith(SCREEN_BY_GROUP_ONLY):
                continue  # summary.json has them
            table.add_row(
                name,
                kind,
                _ms(series["start_mib"]),
                _ms(series["end_mib"]),
                _ms(series["max_mib"]),
                *(_slope(series.get(key)) for key in ("slope_mib_per_h", "late_slope_mib_per_h")),
            )
    console.print(table)


def _window_row(window: dict[str, Any]) -> list[str]:
    p95 = " · ".join(
        f"{service} {'—' if value is None else _ms(value)}"
        for service, value in window["p95_ms"].items()
    )
    return [
        f"{window['t_s']:,.0f}",
        f"{window['users']:,}",
        f"{window['requests_per_s']:,.0f}",
        f"{100 * window['error_rate']:.2f}%",
        f"{100 * window['client_error_rate']:.2f}%",
        p95,
    ]


def print_timeline(console: Console, timeline: dict[str, Any], rows: int = 12) -> None:
    """A dozen windows spread over the run (all of them are in summary.json), and the
    breaking point: where the gateway's p95 crossed 200 ms or 5xx crossed 0.1%."""
    windows = timeline.get("windows", [])
    if not windows:
        return
    table = Table(title="Over time (the gateways' view)", title_justify="left")
    for column in ("t s", "users", "req/s", "5xx", "4xx", "p95 ms"):
        table.add_column(column, justify="left" if column == "p95 ms" else "right")
    step = max(1, len(windows) // rows)
    for window in windows[::step]:
        table.add_row(*_window_row(window))
    console.print(table)
    broken = timeline.get("breaking_point")
    if broken is None:
        console.print(f"no breaking point: peak {timeline['peak_requests_per_s']:,.0f} req/s")
    else:
        cells = _window_row(broken)
        console.print(
            f"breaking point at {cells[0]} s: {cells[1]} users, {cells[2]} req/s, "
            f"5xx {cells[3]}, p95 {cells[5]}"
        )


def print_summary(console: Console, metrics: Metrics, *, lost_writes: int | None) -> bool:
    """The table, and whether everything passed."""
    groups = Table(title="HTTP by route group (ms)", title_justify="left")
    for column in ("group", "requests", "p50", "p95", "p99", "max"):
        groups.add_column(column, justify="left" if column == "group" else "right")
    for name in sorted(metrics):
        match = re.fullmatch(r"http_req_duration\{group:(\w+)\}", name)
        if match:
            v = metrics[name]["values"]
            # k6's live metrics (agora.loadtest.live) have no count and no p(99): "—".
            groups.add_row(
                match.group(1),
                f"{int(v['count']):,}" if "count" in v else "—",
                *(_ms(v[k]) if k in v else "—" for k in ("med", "p(95)", "p(99)", "max")),
            )
    console.print(groups)
    requests = _value(metrics, "http_reqs", "count")
    console.print(
        f"requests {requests:,.0f} · {_value(metrics, 'http_reqs', 'rate'):,.1f} req/s · "
        f"errors {100 * _value(metrics, 'http_req_failed', 'rate'):.3f}% · "
        f"429s {_value(metrics, 'rate_limited', 'count'):,.0f} · "
        f"checks {100 * _value(metrics, 'checks', 'rate'):.2f}%"
    )
    delivery = metrics.get("post_delivery_ms", {}).get("values", {})
    delivered = f"{delivery['count']:,.0f}" if "count" in delivery else "—"  # live: no count
    console.print(
        f"WebSocket connect p95 {_ms(_value(metrics, 'ws_connecting', 'p(95)'))} ms · "
        f"dropped {_value(metrics, 'ws_dropped', 'count'):,.0f} · post.created delivered "
        f"{delivered} times, p50 "
        f"{_ms(_value(metrics, 'post_delivery_ms', 'med'))} ms, p95 "
        f"{_ms(_value(metrics, 'post_delivery_ms', 'p(95)'))} ms"
    )
    table = Table(title="Thresholds", title_justify="left")
    for column in ("metric", "threshold", "value", "result"):
        table.add_column(column)
    results = verdicts(metrics)
    for verdict in results:
        value = "—" if verdict.value is None else f"{verdict.value:,.4g}"
        mark = "[green]pass[/]" if verdict.ok else "[red]FAIL[/]"
        table.add_row(verdict.metric, verdict.threshold, value, mark)
    if lost_writes is not None:
        mark = "[green]pass[/]" if lost_writes == 0 else "[red]FAIL[/]"
        table.add_row("lost writes (harness)", "== 0", str(lost_writes), mark)
    console.print(table)
    return all(v.ok for v in results) and lost_writes == 0
