"""Rates as operators write them, and the settings that carry them."""

from __future__ import annotations

import pytest

from agora.config import ConfigError, Settings, load_settings
from agora.ratelimit.rates import Rate, parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100/minute", Rate(100, 60)),
        ("5/min", Rate(5, 60)),
        ("50/second", Rate(50, 1)),
        ("50/s", Rate(50, 1)),
        (" 1000 / 2h ", Rate(1000, 7200)),
        ("10/days", Rate(10, 86400)),
        ("60/Minutes", Rate(60, 60)),
    ],
)
def test_parse_rate(text: str, expected: Rate) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "100", "abc", "0/minute", "10/0s", "10/fortnight", "-1/s"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_defaults_are_the_issue_s() -> None:
    settings = Settings()
    assert settings.ratelimit_enabled
    assert settings.ratelimit_user == Rate(100, 60)
    assert settings.ratelimit_credentials == Rate(5, 60)
    assert settings.ratelimit_anonymous == Rate(60, 60)
    assert settings.ratelimit_ws_messages == Rate(50, 1)
    assert settings.ratelimit_allowlist == []
    assert settings.internal_token is None
    assert "127.0.0.0/8" in settings.trusted_proxies  # the gateway; loopback is not exempt


def test_rates_and_lists_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_RATELIMIT_USER", "20/minute")
    monkeypatch.setenv("AGORA_RATELIMIT_WS_MESSAGES", "10/second")
    monkeypatch.setenv("AGORA_RATELIMIT_ALLOWLIST", "10.0.0.0/8, fd00::/8")
    monkeypatch.setenv("AGORA_INTERNAL_TOKEN", "s" * 32)
    settings = load_settings()
    assert settings.ratelimit_user == Rate(20, 60)
    assert settings.ratelimit_ws_messages == Rate(10, 1)
    assert settings.ratelimit_allowlist == ["10.0.0.0/8", "fd00::/8"]
    assert settings.internal_token is not None
    assert settings.internal_token.get_secret_value() == "s" * 32
    assert "s" * 32 not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AGORA_RATELIMIT_USER", "lots", "AGORA_RATELIMIT_USER"),
        ("AGORA_RATELIMIT_ALLOWLIST", "10.0.0.0/8,not-a-network", "AGORA_RATELIMIT_ALLOWLIST"),
        ("AGORA_INTERNAL_TOKEN", "short", "at least 16 characters"),
        ("AGORA_RATELIMIT_REDIS_TIMEOUT_S", "0", "AGORA_RATELIMIT_REDIS_TIMEOUT_S"),
    ],
)
def test_bad_values_stop_the_process_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()
