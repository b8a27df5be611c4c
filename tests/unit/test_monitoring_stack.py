"""`agora up --monitoring` planning: what it renders, and what it says without the tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agora.config import Settings
from agora.devstack import monitoring
from agora.devstack.supervisor import Instance


def _instances() -> list[Instance]:
    return [
        Instance("auth", 1, 8080),
        Instance("posts", 1, 8081),
        Instance("auth", 2, 8083),
        Instance("gateway", 1, 9901, argv=["envoy"]),
    ]


def test_without_prometheus_it_names_every_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # none of the tools on it
    stack, notes = monitoring.plan(Settings(), tmp_path, _instances(), "postgresql://x/db")
    assert stack is None
    assert notes == [
        "prometheus, prometheus-alertmanager, prometheus-node-exporter, "
        "prometheus-postgres-exporter not installed: run `make monitoring-tools` (or apt-get "
        "install prometheus prometheus-alertmanager prometheus-node-exporter "
        "prometheus-postgres-exporter)"
    ]


def test_targets_list_every_instance_by_service(tmp_path: Path) -> None:
    monitoring.write_targets(tmp_path, {"agora": monitoring.service_targets(_instances())})
    assert json.loads((tmp_path / "agora.json").read_text()) == [
        {"targets": ["127.0.0.1:8080", "127.0.0.1:8083"], "labels": {"service": "auth"}},
        {"targets": ["127.0.0.1:8081"], "labels": {"service": "posts"}},
    ]


def test_postgres_exporter_is_told_not_to_ask_for_tls() -> None:
    assert monitoring._postgres_dsn("postgresql://u@h/db") == "postgresql://u@h/db?sslmode=disable"
    assert monitoring._postgres_dsn("postgresql://u@/db?host=/s") == (
        "postgresql://u@/db?host=/s&sslmode=disable"
    )
    assert monitoring._postgres_dsn("postgresql://h/db?sslmode=require").endswith("require")


def test_group_wait_is_capped_at_the_setting_everywhere() -> None:
    route: dict[str, Any] = {
        "group_wait": "30s",
        "routes": [{"group_wait": "10m"}, {}, {"group_wait": "10s"}],
    }
    monitoring._cap_group_wait(route, 20.0, 30.0)
    assert [route["group_wait"], *(r["group_wait"] for r in route["routes"])] == [
        "20s",
        "20s",
        "20s",
        "10s",
    ]
