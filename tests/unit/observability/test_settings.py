"""The observability variables: defaults per environment and the guards on bad values."""

from __future__ import annotations

import pytest

from agora.config import ConfigError, Settings, load_settings
from tests.conftest import production_settings


def test_sampling_defaults_follow_the_environment() -> None:
    development, production = Settings(), production_settings()
    assert (development.effective_trace_sample_ratio, development.effective_log_sample_ratio) == (
        1.0,
        1.0,
    )
    assert (production.effective_trace_sample_ratio, production.effective_log_sample_ratio) == (
        0.1,
        0.1,
    )
    assert production_settings(log_sample_ratio=0.5).effective_log_sample_ratio == 0.5
    assert "/api/v1/posts/feed" in development.log_hot_routes


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_LOG_HOT_ROUTES", "/a, /b/{id}")
    monkeypatch.setenv("AGORA_LOG_FILE", "")
    monkeypatch.setenv("AGORA_OTLP_ENDPOINT", "http://collector:4318")
    settings = load_settings()
    assert settings.log_hot_routes == ["/a", "/b/{id}"]
    assert settings.log_file is None
    assert settings.otlp_endpoint == "http://collector:4318"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGORA_OTLP_ENDPOINT", "collector:4318"),
        ("AGORA_OTLP_ENDPOINT", "grpc://collector:4317"),
        ("AGORA_TRACE_SAMPLE_RATIO", "1.5"),
        ("AGORA_LOG_SAMPLE_RATIO", "-0.1"),
        ("AGORA_LOG_SLOW_REQUEST_MS", "0"),
        ("AGORA_ACTIVE_USERS_FLUSH_S", "0"),
    ],
)
def test_bad_values_stop_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()
