from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from agora.config import ConfigError, Settings, load_settings


def test_defaults_are_development() -> None:
    settings = Settings()
    assert settings.env == "development"
    assert settings.effective_log_format == "console"
    assert settings.effective_trace_sample_ratio == 1.0
    assert settings.effective_cookie_secure is False
    assert settings.access_token_ttl_s == 900
    assert settings.realtime_max_sockets_per_user == 8


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("AGORA_TRUSTED_PROXIES", "10.0.0.0/8")
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AGORA_ENV", "staging", "AGORA_ENV"),
        ("AGORA_DATABASE_URL", "mysql://x", "AGORA_DATABASE_URL"),
        ("AGORA_REDIS_URL", "http://x", "AGORA_REDIS_URL"),
        ("AGORA_TRUSTED_PROXIES", "not-a-network", "AGORA_TRUSTED_PROXIES"),
        ("AGORA_ACCESS_TOKEN_TTL_S", "3600", "AGORA_ACCESS_TOKEN_TTL_S"),
        ("AGORA_DB_POOL_MAX_SIZE", "zero", "AGORA_DB_POOL_MAX_SIZE"),
        ("AGORA_REALTIME_MAX_SOCKETS_PER_USER", "0", "AGORA_REALTIME_MAX_SOCKETS_PER_USER"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_production_refuses_development_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_ENV", "production")
    monkeypatch.setenv("AGORA_CORS_ORIGINS", "*")
    with pytest.raises(ConfigError, match="CORS"):
        load_settings()
    monkeypatch.setenv("AGORA_CORS_ORIGINS", "https://app.example")
    monkeypatch.setenv("AGORA_DEBUG", "true")
    with pytest.raises(ConfigError, match="DEBUG"):
        load_settings()


def test_missing_urls_have_a_clear_message() -> None:
    settings = Settings(database_url=None, redis_url=None)
    with pytest.raises(ConfigError, match="AGORA_DATABASE_URL is not set"):
        settings.require_database_url()
    with pytest.raises(ConfigError, match="AGORA_REDIS_URL is not set"):
        settings.require_redis_url()


def test_pool_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="MIN_SIZE"):
        Settings(db_pool_min_size=10, db_pool_max_size=5)


def test_pool_defaults_are_the_seed_values() -> None:
    settings = Settings()
    assert (settings.db_pool_max_size, settings.db_pool_min_size) == (100, 10)
    assert (settings.db_pool_max_lifetime_s, settings.db_pool_max_idle_s) == (1800, 300)
    assert settings.db_command_timeout_s == 10
    assert settings.db_leak_threshold_s == 300


def test_admin_token_is_off_by_default_and_must_be_long(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().admin_token is None
    monkeypatch.setenv("AGORA_ADMIN_TOKEN", "")
    assert Settings().admin_token is None
    monkeypatch.setenv("AGORA_ADMIN_TOKEN", "short")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings()


def test_replica_urls_must_be_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_DATABASE_REPLICA_URLS", "postgresql://a/x, mysql://b/y")
    with pytest.raises(ValidationError, match="every replica must be a postgresql"):
        Settings()


def test_secrets_dir_files_set_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    key = Fernet.generate_key().decode()
    (tmp_path / "agora_key_encryption_key").write_text(key)
    (tmp_path / "agora_admin_token").write_text("x" * 20)
    monkeypatch.setenv("AGORA_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("AGORA_ADMIN_TOKEN", "y" * 20)  # the environment wins over a file
    settings = load_settings()
    assert [k.get_secret_value() for k in settings.key_encryption_key] == [key]
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "y" * 20
