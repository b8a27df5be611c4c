"""deploy/oncall.yml against Alertmanager's routing: the same receivers and time intervals,
and each severity reaching, at each time of the week, exactly the receivers of the escalation
matrix. The routing tree is walked here with its time intervals (amtool ignores them), and the
time-blind receiver lists are checked with amtool too."""

from __future__ import annotations

import re
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.monitoring.checks import DEPLOY, needs_amtool, run

ONCALL = DEPLOY / "oncall.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
KINDS = {"slack_configs": "slack", "pagerduty_configs": "pagerduty", "email_configs": "email"}
PLACEHOLDER = re.compile(r"^<[^<>]+>$")

# Moments of the week that tell the routes apart (a Wednesday in working hours, the same
# evening, a Saturday, and inside the Sunday maintenance window).
MOMENTS = {
    "weekday-business-hours": datetime(2026, 3, 4, 11, 0, tzinfo=ZoneInfo("Europe/London")),
    "weekday-evening": datetime(2026, 3, 4, 22, 0, tzinfo=ZoneInfo("Europe/London")),
    "saturday": datetime(2026, 3, 7, 12, 0, tzinfo=ZoneInfo("Europe/London")),
    "maintenance": datetime(2026, 3, 8, 3, 0, tzinfo=ZoneInfo("UTC")),
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _weekdays(spec: list[str]) -> set[int]:
    days: set[int] = set()
    for item in spec:
        first, _, last = item.partition(":")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.update(range(start, end + 1))
    return days


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def normalised(interval: dict[str, Any]) -> dict[str, Any]:
    """One Alertmanager time interval (or this file's declaration of it), comparable."""
    return {
        "weekdays": sorted(_weekdays(interval.get("weekdays", WEEKDAYS))),
        "times": [(t["start_time"], t["end_time"]) for t in interval.get("times", [])],
        "location": interval.get("location", "UTC"),
    }


def in_interval(interval: dict[str, Any], moment: datetime) -> bool:
    local = moment.astimezone(ZoneInfo(interval["location"]))
    if local.weekday() not in interval["weekdays"]:
        return False
    if not interval["times"]:
        return True
    now = local.time()
    return any(_hhmm(start) <= now < _hhmm(end) for start, end in interval["times"])


def alertmanager_intervals(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    intervals = {}
    for entry in config.get("time_intervals", []):
        assert len(entry["time_intervals"]) == 1, "one period per interval keeps the check simple"
        intervals[entry["name"]] = normalised(entry["time_intervals"][0])
    return intervals


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for matcher in matchers:
        found = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', matcher)
        assert found, f"matcher {matcher!r} not understood by this check"
        name, op, value = found.groups()
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def notified(
    route: dict[str, Any],
    labels: dict[str, str],
    moment: datetime,
    intervals: dict[str, dict[str, Any]],
) -> tuple[bool, set[str]]:
    """(matched, receivers notified at ``moment``) for the subtree of ``route``, the way
    Alertmanager walks it: children in order, stopping at the first match without
    ``continue``; a matched route outside its active or inside its mute intervals still
    counts as matched but notifies nobody."""
    if not _matches(route.get("matchers", []), labels):
        return False, set()
    receivers: set[str] = set()
    child_matched = False
    for child in route.get("routes", []):
        matched, names = notified(child, labels, moment, intervals)
        if matched:
            child_matched = True
            receivers |= names
            if not child.get("continue", False):
                break
    if child_matched:
        return True, receivers
    active = route.get("active_time_intervals")
    if active and not any(in_interval(intervals[name], moment) for name in active):
        return True, set()
    if any(in_interval(intervals[name], moment) for name in route.get("mute_time_intervals", [])):
        return True, set()
    return True, {route["receiver"]}


def expected(
    oncall: dict[str, Any], severity: str, moment: datetime, intervals: dict[str, dict[str, Any]]
) -> set[str]:
    rule = oncall["escalation"][severity]
    business = in_interval(intervals["business-hours"], moment)
    when = {"always": True, "business-hours": business, "outside-business-hours": not business}
    receivers: set[str] = set()
    for step in rule["notify"]:
        if when[step["when"]]:
            receivers |= set(step["receivers"])
    if any(in_interval(intervals[name], moment) for name in rule["muted_during"]):
        receivers &= {"slack"}
    return receivers


@pytest.fixture(scope="module")
def oncall() -> dict[str, Any]:
    return load(ONCALL)


@pytest.fixture(scope="module")
def alertmanager() -> dict[str, Any]:
    return load(ALERTMANAGER)


def test_every_receiver_is_declared_with_its_kind_and_contact(
    oncall: dict[str, Any], alertmanager: dict[str, Any]
) -> None:
    declared = oncall["receivers"]
    configured = {receiver["name"]: receiver for receiver in alertmanager["receivers"]}
    assert set(declared) == set(configured)
    for name, receiver in configured.items():
        kinds = {KINDS[key] for key in receiver if key.endswith("_configs")}
        assert kinds == {declared[name]["kind"]}, name
        config = next(v for k, v in receiver.items() if k.endswith("_configs"))[0]
        if "channel" in config:
            assert config["channel"] == declared[name]["channel"], name
        if "to" in config:
            assert config["to"] == declared[name]["address"], name
        if "routing_key_file" in config:
            assert config["routing_key_file"] == declared[name]["secret_file"], name
        if declared[name]["kind"] == "pagerduty":
            assert declared[name]["rotation"] in oncall["rotations"], name


def test_every_time_interval_is_declared_with_the_same_hours(
    oncall: dict[str, Any], alertmanager: dict[str, Any]
) -> None:
    configured = alertmanager_intervals(alertmanager)
    declared = {name: normalised(spec) for name, spec in oncall["time_intervals"].items()}
    assert declared == configured


@pytest.mark.parametrize("severity", ["P1", "P2", "P3"])
@pytest.mark.parametrize("moment", list(MOMENTS), ids=list(MOMENTS))
def test_each_severity_reaches_the_escalation_matrix_receivers(
    oncall: dict[str, Any], alertmanager: dict[str, Any], severity: str, moment: str
) -> None:
    intervals = alertmanager_intervals(alertmanager)
    labels = {"severity": severity, "alertname": "AgoraTest", "service": "posts"}
    _, actual = notified(alertmanager["route"], labels, MOMENTS[moment], intervals)
    assert actual == expected(oncall, severity, MOMENTS[moment], intervals)


def test_the_routing_walk_can_tell_a_wrong_matrix(
    oncall: dict[str, Any], alertmanager: dict[str, Any]
) -> None:
    """The comparison above can fail: a matrix that pages the team at night is caught."""
    intervals = alertmanager_intervals(alertmanager)
    wrong = yaml.safe_load(yaml.safe_dump(oncall))
    wrong["escalation"]["P2"]["notify"] = [
        {"when": "always", "receivers": ["slack", "pagerduty-team"]}
    ]
    labels = {"severity": "P2", "service": "posts"}
    moment = MOMENTS["weekday-evening"]
    _, actual = notified(alertmanager["route"], labels, moment, intervals)
    assert actual != expected(wrong, "P2", moment, intervals)


@needs_amtool
@pytest.mark.parametrize("severity", ["P1", "P2", "P3"])
def test_amtool_agrees_on_the_receivers_of_each_severity(
    oncall: dict[str, Any], severity: str
) -> None:
    assert run("amtool", "check-config", str(ALERTMANAGER)).returncode == 0
    receivers: list[str] = []
    for step in oncall["escalation"][severity]["notify"]:
        receivers += [r for r in step["receivers"] if r not in receivers]
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={','.join(receivers)}",
        f"severity={severity}",
        "service=posts",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rotations_and_escalations_name_declared_people_and_rotations(
    oncall: dict[str, Any],
) -> None:
    people = {person["id"] for person in oncall["people"]}
    for name, rotation in oncall["rotations"].items():
        assert rotation["members"], name
        assert set(rotation["members"]) <= people, name
    targets = people | set(oncall["rotations"])
    for name, receiver in oncall["receivers"].items():
        assert set(receiver.get("escalates_to", [])) <= targets, name
    for severity, rule in oncall["escalation"].items():
        assert severity in {"P1", "P2", "P3"}
        assert {step["to"] for step in rule["escalate"]} <= targets, severity
        assert set(rule["muted_during"]) <= set(oncall["time_intervals"]), severity
    assert oncall["escalation"]["P1"]["muted_during"] == [], "P1 pages in maintenance too"


def test_the_repository_names_no_people(oncall: dict[str, Any]) -> None:
    """Contacts are placeholders an operator fills in; nobody invented is ever paged."""
    for person in oncall["people"]:
        for field in ("name", "phone", "email", "chat"):
            assert PLACEHOLDER.match(person[field]), f"{person['id']}.{field}: {person[field]}"
    for name, rotation in oncall["rotations"].items():
        assert PLACEHOLDER.match(rotation["paging_schedule"]), name
