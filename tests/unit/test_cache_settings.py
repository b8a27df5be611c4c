"""The cache's settings: defaults from the issue, bad values refused naming the variable."""

from __future__ import annotations

import pytest

from agora.config import ConfigError, Settings, load_settings


def test_cache_lifetimes_default_to_five_and_ten_minutes() -> None:
    settings = Settings()
    assert settings.cache_profile_ttl_s == 300
    assert settings.cache_feed_ttl_s == 300
    assert settings.cache_post_ttl_s == 600


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGORA_CACHE_POST_TTL_S", "0"),
        ("AGORA_CACHE_FEED_TTL_S", "-1"),
        ("AGORA_CACHE_PROFILE_TTL_S", "soon"),
        ("AGORA_CACHE_EARLY_REFRESH_BETA", "-0.5"),
        ("AGORA_CACHE_FEED_MAX_FOLLOWEES", "-1"),
    ],
)
def test_bad_cache_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()
