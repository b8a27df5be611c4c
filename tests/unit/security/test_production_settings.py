"""Production refuses to start with development defaults; encryption keys are validated."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from agora.config import ConfigError, load_settings

KEY = Fernet.generate_key().decode()


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("AGORA_ENV", "production")
    monkeypatch.setenv("AGORA_KEY_ENCRYPTION_KEY", KEY)
    monkeypatch.setenv("AGORA_CORS_ORIGINS", "https://app.example")
    monkeypatch.setenv("AGORA_TRUSTED_PROXIES", "10.0.0.0/8")
    return monkeypatch


@pytest.mark.usefixtures("production")
def test_a_complete_production_configuration_starts() -> None:
    settings = load_settings()
    assert settings.is_production
    assert settings.effective_cookie_secure is True
    assert KEY not in repr(settings)  # the key never shows in logs or tracebacks


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AGORA_KEY_ENCRYPTION_KEY", "", "AGORA_KEY_ENCRYPTION_KEY is required"),
        ("AGORA_COOKIE_SECURE", "false", "AGORA_COOKIE_SECURE"),
        ("AGORA_CORS_ORIGINS", "*", "CORS"),
        ("AGORA_CORS_ORIGINS", "http://app.example", "https://"),
        ("AGORA_DEBUG", "true", "DEBUG"),
    ],
)
def test_production_refuses_each_development_default(
    production: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    production.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_production_refuses_to_guess_which_proxies_to_trust(
    production: pytest.MonkeyPatch,
) -> None:
    # The loopback default is right only when the gateway shares the host: behind a remote
    # gateway every client would have its address, and one client's failed logins lock out all.
    production.delenv("AGORA_TRUSTED_PROXIES")
    with pytest.raises(ConfigError, match="AGORA_TRUSTED_PROXIES must be set explicitly"):
        load_settings()
    production.setenv("AGORA_TRUSTED_PROXIES", "127.0.0.0/8,::1/128")  # the default, said out loud
    assert load_settings().trusted_proxies == ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize("value", ["not-a-key", f"{KEY},short"])
def test_a_malformed_encryption_key_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AGORA_KEY_ENCRYPTION_KEY", value)
    with pytest.raises(ConfigError, match="AGORA_KEY_ENCRYPTION_KEY") as error:
        load_settings()
    assert "short" not in str(error.value)
    assert "not-a-key" not in str(error.value)


def test_several_encryption_keys_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_KEY_ENCRYPTION_KEY", f"{KEY}, {Fernet.generate_key().decode()}")
    assert len(load_settings().key_encryption_key) == 2
