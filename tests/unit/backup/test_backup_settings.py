"""Backup settings from the environment and from a secrets directory (compose, Kubernetes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.backup.settings import load_backup_settings
from agora.config import ConfigError


def test_secrets_directory_files_set_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "agora_backup_s3_secret_access_key").write_text("s3-secret\n")
    (tmp_path / "agora_backup_s3_access_key_id").write_text("AKID")
    (tmp_path / "agora_database_url").write_text("postgresql://u:p@db/agora")
    monkeypatch.setenv("AGORA_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("AGORA_BACKUP_S3_BUCKET", "bucket")
    settings = load_backup_settings()
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "s3-secret"
    assert settings.require_s3() == "bucket"
    assert settings.require_database_url() == "postgresql://u:p@db/agora"


def test_bad_values_are_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_BACKUP_DRILL_LOCK_TIMEOUT_S", "-1")
    with pytest.raises(ConfigError, match="AGORA_BACKUP_DRILL_LOCK_TIMEOUT_S"):
        load_backup_settings()
    monkeypatch.delenv("AGORA_BACKUP_DRILL_LOCK_TIMEOUT_S")
    monkeypatch.setenv("AGORA_BACKUP_S3_ENDPOINT", "http://plain.example.com")
    with pytest.raises(ConfigError, match="https"):
        load_backup_settings()
