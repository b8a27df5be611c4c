"""The run over time from the gateways' counters, and where it broke."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Console

from agora.loadtest.report import print_timeline
from agora.loadtest.timeline import Reading, Window, breaking_point, parse, window

QUANTILES = [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]


def stats(completed: int, errors: int, sockets: int, auth_p95: float | None) -> dict[str, Any]:
    """Envoy's /stats?format=json answer, filtered as the harness filters it."""
    values: list[dict[str, float | None]] = [
        {"interval": None, "cumulative": None} for _ in QUANTILES
    ]
    values[QUANTILES.index(95)] = {"interval": auth_p95, "cumulative": 12.0}
    return {
        "stats": [
            {"name": "http.https.downstream_rq_completed", "value": completed},
            {"name": "http.https.downstream_rq_5xx", "value": errors},
            {"name": "http.https.downstream_rq_4xx", "value": 3},
            {"name": "http.https.downstream_cx_upgrades_active", "value": sockets},
            {
                "histograms": {
                    "supported_quantiles": [float(q) for q in QUANTILES],
                    "computed_quantiles": [
                        {"name": "cluster.auth.upstream_rq_time", "values": values}
                    ],
                }
            },
        ]
    }


def test_a_reading_takes_the_counters_and_the_interval_p95() -> None:
    reading = parse(stats(1000, 2, 40, 180.0))
    assert reading == Reading(1000.0, 2.0, 3.0, 40.0, {"auth": 180.0})


def test_a_window_is_the_difference_over_every_gateway() -> None:
    before = [parse(stats(1000, 0, 10, 50.0)), parse(stats(500, 0, 10, 60.0))]
    after = [parse(stats(3000, 1, 30, 150.0)), parse(stats(2500, 3, 40, 240.0))]
    got = window(20.0, 10.0, before, after)
    assert (got.users, got.requests_per_s, got.error_rate) == (70, 400.0, 4 / 4000)
    assert got.p95_ms == {"auth": 240.0, "posts": None}  # the worst gateway's; none measured
    assert got.broken  # 240 ms > 200 ms, and 0.1% 5xx is not over the limit on its own
    assert not window(20.0, 10.0, before[:1], after[:1]).broken


def calm(t_s: float, p95: float, errors: float = 0.0) -> Window:
    return Window(t_s, int(t_s), 100.0, errors, 0.0, {"auth": 20.0, "posts": p95})


def test_the_breaking_point_is_the_first_of_two_bad_windows_in_a_row() -> None:
    timeline = [calm(0, 50), calm(10, 250), calm(20, 60), calm(30, 70, 0.01), calm(40, 300)]
    broken = breaking_point(timeline)
    assert broken is not None
    assert broken.t_s == 30  # the lone slow window at 10 s is noise
    assert breaking_point(timeline[:3]) is None


def test_the_screen_names_the_breaking_point() -> None:
    windows = [calm(0, 50), calm(10, 250), calm(20, 260)]
    timeline = {
        "windows": [asdict(w) for w in windows],
        "breaking_point": asdict(windows[1]),
        "peak_requests_per_s": 100.0,
    }
    console = Console(record=True, width=120)
    print_timeline(console, timeline)
    assert (
        "breaking point at 10 s: 10 users, 100 req/s, 5xx 0.00%, p95 auth 20.0 · posts 250.0"
        in (console.export_text().replace("\n", " "))
    )
