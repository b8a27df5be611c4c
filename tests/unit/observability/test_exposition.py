"""Rendering /metrics with several worker processes (prometheus_client multiprocess mode)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agora.observability.exposition import render_metrics

WORKER = """
from agora.observability.metrics import POSTS_CREATED, HTTP_REQUESTS
POSTS_CREATED.inc()
HTTP_REQUESTS.labels("posts", "GET", "/api/v1/posts/feed", "200").inc(3)
"""


def test_several_workers_are_aggregated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for _ in range(2):  # two worker processes, each writing its own files
        subprocess.run([sys.executable, "-c", WORKER], env=env, check=True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body, content_type = render_metrics()
    assert content_type.startswith("text/plain")
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert values[("agora_posts_created_total", ())] == 2
    feed = (
        ("method", "GET"),
        ("route", "/api/v1/posts/feed"),
        ("service", "posts"),
        ("status", "200"),
    )
    assert values[("agora_http_requests_total", feed)] == 6


def test_one_process_renders_its_own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    body, _ = render_metrics()
    assert b"# TYPE agora_http_requests_total counter" in body
