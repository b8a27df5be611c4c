"""docker-compose.production.yml: valid for Compose and the compose-spec schema, and every
service hardened (checked on the file as Compose resolves it, anchors and merges applied)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.production.yml"
BIN = Path(__file__).resolve().parents[2] / ".venv/bin"
ONE_SHOT = {"migrate", "gateway-config"}  # jobs that run to completion: no health, no restart
NO_HEALTH = {*ONE_SHOT, "backup"}  # the backup loop reports through its metrics instead


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(BIN))
    assert found, f"{name} is missing: make install / .ci/run install it"
    return found


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = subprocess.run(
        [tool("docker-compose"), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = yaml.safe_load(result.stdout)
    return document


def test_compose_spec_schema() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_whole_system_is_there(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in ("auth", "posts", "realtime"):
        assert services[name]["deploy"]["replicas"] == 3
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    expected = {
        "gateway", "gateway-config", "migrate", "postgres-primary", "postgres-replica",
        "redis-master", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3",
        "prometheus", "alertmanager", "grafana", "node-exporter", "postgres-exporter",
        "redis-exporter", "jaeger", "backup",
    }  # fmt: skip
    assert expected <= set(services)
    mounts = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    for path in (
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/rules",
        "deploy/alertmanager/alertmanager.yml",
        "deploy/grafana/provisioning",
    ):
        assert str(ROOT / path) in mounts
    assert services["gateway-config"]["command"][:2] == ["gateway", "render"]


@pytest.mark.parametrize(
    "check",
    ["read_only", "cap_drop", "no_new_privileges", "limits", "restart", "healthcheck", "ports"],
)
def test_every_service_is_hardened(resolved: dict[str, Any], check: str) -> None:
    offenders = []
    for name, service in resolved["services"].items():
        health = service.get("healthcheck", {}).get("test")
        ok = {
            "read_only": service.get("read_only") is True,
            "cap_drop": service.get("cap_drop") == ["ALL"],
            "no_new_privileges": "no-new-privileges:true" in service.get("security_opt", []),
            "limits": {"cpus", "memory"}
            <= set(service.get("deploy", {}).get("resources", {}).get("limits", {})),
            "restart": service.get("restart") == ("no" if name in ONE_SHOT else "unless-stopped"),
            "healthcheck": health == ["NONE"]
            if name in NO_HEALTH
            else bool(health) and health[0] == "CMD",
            "ports": not service.get("ports") or name == "gateway",
        }[check]
        if not ok:
            offenders.append(name)
    assert offenders == []


def test_secrets_are_files_not_environment(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        environment = service.get("environment") or {}
        environment.pop("AGORA_SECRETS_DIR", None)
        for key, value in environment.items():
            assert not any(word in key for word in ("PASSWORD", "SECRET", "TOKEN")) or (
                key.endswith("_FILE")
            ), f"{name}: {key} belongs in secrets:"
            assert "://" not in str(value) or "@" not in str(value), (
                f"{name}: {key} has a credential"
            )
    assert resolved["secrets"]["agora_key_encryption_key"]["file"].endswith(
        "secrets/agora_key_encryption_key"
    )
