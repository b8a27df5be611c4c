"""Backup configuration, from the environment (prefix ``AGORA_BACKUP_``; README lists each).

Kept apart from the services' Settings: only `agora backup` reads it, and its secrets (the
repository passphrase, the S3 keys) never need to reach a service process.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agora.config import ConfigError, describe_validation_error

MIN_PASSPHRASE_CHARS = 16


class BackupSettings(BaseSettings):
    """Where the cluster is, where backups go, how they are encrypted and how long kept."""

    model_config = SettingsConfigDict(env_prefix="AGORA_BACKUP_", extra="ignore", frozen=True)

    stanza: str = Field(default="agora", pattern=r"^[A-Za-z0-9_-]+$")
    # The cluster pgBackRest copies: its data directory, and how to reach it on this host.
    pg_data: Path | None = None
    pg_port: int = Field(default=5432, ge=1, le=65535)
    pg_socket_dir: Path = Path("/var/run/postgresql")
    pg_user: str = "postgres"
    # The OS user the cluster runs as (pgBackRest must run as it); default: this user, or
    # `postgres` when running as root.
    os_user: str | None = None
    # The application's database: source of the logical dump and of the drill's row counts.
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGORA_BACKUP_DATABASE_URL", "AGORA_DATABASE_URL"),
    )

    config_dir: Path = Path(".agora/backup")
    repo_path: Path = Path(".agora/backup/repo")
    passphrase: SecretStr | None = None
    passphrase_file: Path | None = None

    s3_bucket: str | None = None
    s3_endpoint: str = "https://s3.amazonaws.com"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_ca_file: Path | None = None
    s3_uri_style: Literal["host", "path"] = "host"
    s3_prefix: str = "/agora"
    s3_timeout_s: float = Field(default=10.0, gt=0)

    retention_full_type: Literal["time", "count"] = "time"
    retention_full: int = Field(default=30, ge=1)
    logical_retention_days: int = Field(default=30, ge=1)
    archive_timeout_s: int = Field(default=60, ge=1, le=3600)
    process_max: int = Field(default=2, ge=1, le=32)
    textfile_dir: Path = Path(".agora/textfile")
    drill_dir: Path | None = None

    @field_validator("s3_endpoint")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https:// URL (pgBackRest talks to S3 over TLS only)")
        return value.rstrip("/")

    @field_validator("s3_bucket", "s3_access_key_id", "passphrase", "pg_data", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def config_file(self) -> Path:
        return self.config_dir / "pgbackrest.conf"

    @property
    def s3_host(self) -> str:
        return urlsplit(self.s3_endpoint).hostname or ""

    @property
    def s3_port(self) -> int:
        return urlsplit(self.s3_endpoint).port or 443

    @property
    def run_as(self) -> str:
        if self.os_user:
            return self.os_user
        return "postgres" if os.geteuid() == 0 else getpass.getuser()

    def require_passphrase(self) -> str:
        """The repository passphrase, from AGORA_BACKUP_PASSPHRASE_FILE or _PASSPHRASE."""
        if self.passphrase_file is not None:
            try:
                value = self.passphrase_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"AGORA_BACKUP_PASSPHRASE_FILE {self.passphrase_file}: {exc.strerror}"
                ) from None
        elif self.passphrase is not None:
            value = self.passphrase.get_secret_value()
        else:
            raise ConfigError(
                "no backup passphrase: set AGORA_BACKUP_PASSPHRASE_FILE (a file holding it) "
                "or AGORA_BACKUP_PASSPHRASE; keep a copy off this host, no backup opens without it"
            )
        if len(value) < MIN_PASSPHRASE_CHARS:
            raise ConfigError(
                f"the backup passphrase must be at least {MIN_PASSPHRASE_CHARS} characters"
            )
        return value

    def require_pg_data(self) -> Path:
        if self.pg_data is None:
            raise ConfigError("AGORA_BACKUP_PG_DATA is not set (the cluster's data directory)")
        return self.pg_data

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigError(
                "AGORA_DATABASE_URL (or AGORA_BACKUP_DATABASE_URL) is not set: "
                "the database the logical dump and the drill read"
            )
        return self.database_url

    def require_s3(self) -> str:
        if self.s3_bucket is None:
            raise ConfigError(
                "no S3 repository: set AGORA_BACKUP_S3_BUCKET (and its endpoint/keys)"
            )
        if self.s3_access_key_id is None or self.s3_secret_access_key is None:
            raise ConfigError(
                "AGORA_BACKUP_S3_ACCESS_KEY_ID and AGORA_BACKUP_S3_SECRET_ACCESS_KEY must be set"
            )
        return self.s3_bucket


def load_backup_settings() -> BackupSettings:
    try:
        return BackupSettings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
