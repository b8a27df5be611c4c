"""docker-compose.production.yml: valid for Compose and the compose-spec schema, and every
service hardened (checked on the file as Compose resolves it, anchors and merges applied)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agora.backup.settings import BackupSettings

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
        environment = dict(service.get("environment") or {})  # the fixture is shared
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


def test_backup_service_speaks_agora_backup(resolved: dict[str, Any]) -> None:
    """Every AGORA_BACKUP_* it sets and every secret it mounts is a setting `agora backup` reads
    (a misspelt one would be ignored silently), with the data and config the primary shares."""
    services = resolved["services"]
    backup, primary = services["backup"], services["postgres-primary"]
    fields = {f"AGORA_BACKUP_{name.upper()}" for name in BackupSettings.model_fields}
    environment = backup["environment"]
    assert {k for k in environment if k.startswith("AGORA_BACKUP_")} <= fields
    assert environment["AGORA_SECRETS_DIR"] == "/run/secrets"
    secrets = {s["source"] if isinstance(s, dict) else s for s in backup["secrets"]}
    assert secrets - {"agora_database_url"} <= {name.lower() for name in fields}
    assert environment["AGORA_BACKUP_PASSPHRASE_FILE"] == "/run/secrets/agora_backup_passphrase"
    assert "agora-backup" in backup["image"]
    assert backup["command"] == ["schedule"]
    assert backup["user"] == "999:999"  # the data directory's owner in the postgres image

    def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
        """target → (source, mode), from Compose v1's short syntax source:target[:mode]."""
        found = {}
        for volume in service["volumes"]:
            source, target, *mode = volume.split(":")
            found[target] = (source, mode[0] if mode else "rw")
        return found

    ours, theirs = mounts(backup), mounts(primary)
    assert ours[environment["AGORA_BACKUP_PG_DATA"]] == ("postgres-primary", "ro")
    assert theirs["/var/lib/postgresql/data"] == ("postgres-primary", "rw")
    for shared in (environment["AGORA_BACKUP_PG_SOCKET_DIR"], "/var/lib/agora-backup"):
        assert ours[shared] == theirs[shared]
    assert environment["AGORA_BACKUP_CONFIG_DIR"].startswith("/var/lib/agora-backup/")
    assert "agora-postgres" in primary["image"]
    assert "egress" in backup["networks"]
    assert "egress" in primary["networks"]
    assert not resolved["networks"]["egress"].get("internal")
    replica = services["postgres-replica"]["image"]
    assert replica.startswith("postgres:15"), "the replica runs the primary's major version"
