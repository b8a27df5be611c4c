"""The file provider through the real OpenFeature client: format checks, sticky percentage
rollouts, reload on change, and the evaluation metric."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agora.config import ConfigError, Settings, load_settings
from agora.flags import FeatureFlags, FlagFileError, bucket
from agora.flags.catalog import CATALOG, NOTIFICATION_LIKE_COUNT
from agora.flags.provider import parse_flags
from tests.conftest import production_settings


def write_flags(path: Path, flags: dict[str, Any]) -> None:
    path.write_text(json.dumps({"flags": flags}), encoding="utf-8")


def write_raw(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def like_count_flag(percent: float) -> dict[str, Any]:
    return {
        NOTIFICATION_LIKE_COUNT.key: {
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "rollout": {"variant": "on", "percent": percent},
        }
    }


@pytest.fixture
def flags_path(tmp_path: Path) -> Path:
    return tmp_path / "flags.json"


@pytest.fixture
def flags(flags_path: Path) -> Iterator[FeatureFlags]:
    write_flags(flags_path, like_count_flag(0))
    instance = FeatureFlags.from_file(str(flags_path), reload_s=0.05)
    yield instance
    instance.close()


def evaluations(flag: str, variant: str) -> float:
    value = REGISTRY.get_sample_value(
        "agora_feature_flag_evaluations_total", {"flag": flag, "variant": variant}
    )
    assert value is not None, f"no series for {flag}/{variant}"
    return value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"flags": []}', '{"flags": {...}}'),
        ('{"flags": {"f": {"variants": {}, "defaultVariant": "x"}}}', "non-empty object"),
        ('{"flags": {"f": {"variants": {"a": 1}, "defaultVariant": "b"}}}', "defaultVariant"),
        (
            '{"flags": {"f": {"variants": {"a": 1}, "defaultVariant": "a", "rolout": {}}}}',
            "unknown field(s) rolout",
        ),
        (
            '{"flags": {"f": {"variants": {"a": 1}, "defaultVariant": "a",'
            ' "rollout": {"variant": "a", "percent": 101}}}}',
            "from 0 to 100",
        ),
        (
            '{"flags": {"f": {"variants": {"a": 1}, "defaultVariant": "a",'
            ' "rollout": {"variant": "z", "percent": 5}}}}',
            "rollout.variant",
        ),
    ],
)
def test_a_malformed_file_is_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FlagFileError, match=None) as caught:
        parse_flags(text, source="flags.json")
    assert message in str(caught.value)
    assert str(caught.value).startswith("flags.json")


def test_settings_refuse_a_missing_or_malformed_flags_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGORA_FLAGS_FILE", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match=r"AGORA_FLAGS_FILE: .*cannot read the flags file"):
        load_settings()
    bad = tmp_path / "bad.json"
    bad.write_text('{"flags": {"x": {}}}')
    monkeypatch.setenv("AGORA_FLAGS_FILE", str(bad))
    with pytest.raises(ConfigError, match=r"AGORA_FLAGS_FILE: .*flag 'x'"):
        load_settings()


def test_fault_injection_is_refused_in_production_unless_enabled() -> None:
    assert Settings().effective_fault_injection is True
    assert production_settings().effective_fault_injection is False
    assert production_settings(fault_injection=True).effective_fault_injection is True
    assert Settings(fault_injection=False).effective_fault_injection is False


def test_every_known_flag_has_its_series_from_start() -> None:
    for spec in CATALOG:
        for variant in spec.variants:
            assert evaluations(spec.key, variant) >= 0


def test_without_a_file_every_flag_is_the_code_default() -> None:
    flags = FeatureFlags.from_file(None)
    try:
        before = evaluations(NOTIFICATION_LIKE_COUNT.key, "default")
        assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="u1") is False
        assert evaluations(NOTIFICATION_LIKE_COUNT.key, "default") == before + 1
    finally:
        flags.close()


def test_a_user_stays_in_as_the_percentage_only_rises(
    flags: FeatureFlags, flags_path: Path
) -> None:
    users = [str(uuid.UUID(int=n)) for n in range(2000)]
    previous: set[str] = set()
    for percent in (1, 5, 10, 25, 50, 99.5, 100):
        write_flags(flags_path, like_count_flag(percent))
        assert flags.reload() is True
        enabled = {u for u in users if flags.enabled(NOTIFICATION_LIKE_COUNT, user_id=u)}
        # Sticky: nobody who had it loses it while the percentage rises.
        assert previous <= enabled, f"{len(previous - enabled)} users dropped out at {percent}%"
        # The share follows the percentage (binomial, 2000 users: well within 3.5 points).
        assert abs(len(enabled) / len(users) * 100 - percent) < 3.5, (percent, len(enabled))
        # And each user's answer is the same on every evaluation.
        assert all(flags.enabled(NOTIFICATION_LIKE_COUNT, user_id=u) for u in list(enabled)[:50])
        previous = enabled
    assert previous == set(users)


def test_a_user_out_stays_out_at_the_same_percentage(flags: FeatureFlags, flags_path: Path) -> None:
    write_flags(flags_path, like_count_flag(30))
    flags.reload()
    outside = [
        u
        for u in (str(uuid.uuid4()) for _ in range(200))
        if not flags.enabled(NOTIFICATION_LIKE_COUNT, user_id=u)
    ]
    assert outside
    for _ in range(5):
        assert not any(flags.enabled(NOTIFICATION_LIKE_COUNT, user_id=u) for u in outside)
    assert all(bucket(NOTIFICATION_LIKE_COUNT.key, u) >= 30 for u in outside)


def test_the_bucket_depends_on_the_flag_so_rollouts_pick_different_users() -> None:
    users = [str(n) for n in range(1000)]
    first = {u for u in users if bucket("flag-a", u) < 10}
    second = {u for u in users if bucket("flag-b", u) < 10}
    assert first != second
    assert len(first & second) < len(first) / 2


def test_no_user_means_the_default_variant(flags: FeatureFlags, flags_path: Path) -> None:
    write_flags(flags_path, like_count_flag(100))
    flags.reload()
    assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id=None) is False
    assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="someone") is True


def test_evaluations_are_counted_by_variant(flags: FeatureFlags, flags_path: Path) -> None:
    write_flags(flags_path, like_count_flag(100))
    flags.reload()
    on, off = (evaluations(NOTIFICATION_LIKE_COUNT.key, v) for v in ("on", "off"))
    flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="a")
    flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="b")
    flags.enabled(NOTIFICATION_LIKE_COUNT, user_id=None)
    assert evaluations(NOTIFICATION_LIKE_COUNT.key, "on") == on + 2
    assert evaluations(NOTIFICATION_LIKE_COUNT.key, "off") == off + 1


def test_a_variant_of_the_wrong_type_serves_the_default(
    flags: FeatureFlags, flags_path: Path
) -> None:
    write_flags(
        flags_path,
        {NOTIFICATION_LIKE_COUNT.key: {"variants": {"on": "yes"}, "defaultVariant": "on"}},
    )
    flags.reload()
    before = evaluations(NOTIFICATION_LIKE_COUNT.key, "default")
    assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="a") is False
    assert evaluations(NOTIFICATION_LIKE_COUNT.key, "default") == before + 1


def test_a_disabled_flag_serves_the_default(flags: FeatureFlags, flags_path: Path) -> None:
    flag = like_count_flag(100)
    flag[NOTIFICATION_LIKE_COUNT.key]["state"] = "DISABLED"
    write_flags(flags_path, flag)
    flags.reload()
    assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="a") is False


def test_match_limits_a_rollout_to_a_context_attribute(
    flags: FeatureFlags, flags_path: Path
) -> None:
    flag = like_count_flag(100)
    flag[NOTIFICATION_LIKE_COUNT.key]["match"] = {"service": ["posts"]}
    write_flags(flags_path, flag)
    flags.reload()
    assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="a", service="posts") is True
    assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="a", service="auth") is False


async def test_the_file_is_reloaded_when_it_changes_and_a_broken_one_is_ignored(
    flags: FeatureFlags, flags_path: Path
) -> None:
    changes: list[int] = []
    changed = asyncio.Event()

    def on_change() -> None:
        changes.append(1)
        changed.set()

    flags.on_change(on_change)
    async with flags.watching():
        assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="a") is False
        write_flags(flags_path, like_count_flag(100))
        async with asyncio.timeout(5):
            await changed.wait()
        assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="a") is True
        assert changes == [1]
        write_raw(flags_path, "{broken")
        await asyncio.sleep(0.3)
        # The flags in force stay: a typo must not switch every flag back to its default.
        assert flags.enabled(NOTIFICATION_LIKE_COUNT, user_id="a") is True
        assert changes == [1]
