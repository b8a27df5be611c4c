"""One scenario, measured: fault -> notification at the webhook (MTTD), fault -> the alert
resolved and the SLIs back (MTTR), and what the background load saw meanwhile."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from agora.gameday.scenarios import Context, Expect, Scenario
from agora.gameday.stack import Timing

# The seed's bounds.
MTTD_BOUND_S = 300.0
MTTR_BOUND_S = 1800.0
# Errors the load may see while an instance survives (the target), reads: none.
ERROR_BUDGET = 0.001
# Every alert reaches Slack (the routing tree's first route, `continue: true`).
RECEIVER = "slack"


@dataclass
class Result:
    scenario: str
    what: str
    timing: str
    expected: list[str]
    alert: str | None = None
    mttd_s: float | None = None
    mttr_s: float | None = None
    sli_back_s: float | None = None
    requests: int = 0
    errors: int = 0
    errors_by_route: dict[str, int] = field(default_factory=dict)
    wrong_service: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    runbook: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _alerts(entry: dict[str, Any]) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = entry["payload"].get("alerts", [])
    return alerts


def find_notification(
    notifications: list[dict[str, Any]],
    expects: list[Expect],
    since: float,
    status: str,
    fingerprint: str | None = None,
) -> tuple[float, dict[str, Any]] | None:
    for entry in notifications:
        if entry["receiver"] != RECEIVER or entry["received_at"] < since:
            continue
        for alert in _alerts(entry):
            if alert.get("status") != status:
                continue
            if fingerprint is not None and alert.get("fingerprint") != fingerprint:
                continue
            if any(e.matches(alert["labels"]) for e in expects):
                return entry["received_at"], alert
    return None


def wrong_service(
    notifications: list[dict[str, Any]], expects: list[Expect], since: float
) -> list[str]:
    """The expected alert names, firing for a service the fault did not touch."""
    names = {e.alertname for e in expects}
    wrong = set()
    for entry in notifications:
        if entry["receiver"] != RECEIVER or entry["received_at"] < since:
            continue
        for alert in _alerts(entry):
            labels = alert["labels"]
            unexpected = not any(e.matches(labels) for e in expects)
            if labels.get("alertname") in names and unexpected and alert.get("status") == "firing":
                wrong.add(f"{labels['alertname']}{{service={labels.get('service')}}}")
    return sorted(wrong)


def run(ctx: Context, scenario: Scenario, timing: Timing, log: Any) -> Result:
    stack, load = ctx.stack, ctx.load
    fast = timing.time_scale < 1
    detect_timeout = (60 if fast else 0) + MTTD_BOUND_S * (0.5 if fast else 1.2)
    resolve_timeout = 300.0 if fast else MTTR_BOUND_S
    sli_window = 5.0 if fast else 30.0

    log(f"[{scenario.name}] waiting for healthy SLIs before the fault…")
    _wait(lambda: load.healthy(sli_window), 300 if fast else 900)
    started = time.time()
    expects = scenario.inject(ctx)
    result = Result(
        scenario.name, scenario.what, timing.name, [e.describe() for e in expects],
        runbook=scenario.runbook,
    )  # fmt: skip
    log(f"[{scenario.name}] injected at {time.strftime('%H:%M:%S')}; expecting "
        f"{', '.join(result.expected) or 'no page'}")  # fmt: skip
    fingerprint = None
    if expects:
        found = _wait(
            lambda: find_notification(stack.notifications(), expects, started, "firing"),
            detect_timeout,
        )
        if found is None:
            result.problems.append(f"no notification of {', '.join(result.expected)}")
        else:
            at, alert = found
            fingerprint = alert.get("fingerprint")
            result.alert = alert["labels"]["alertname"]
            result.mttd_s = round(at - started, 1)
            log(f"[{scenario.name}] {result.alert} notified after {result.mttd_s} s")
    if scenario.remedy is not None:
        log(f"[{scenario.name}] applying the runbook's step")
        scenario.remedy(ctx)
    # A fault that heals itself may not have hurt yet: look only after a grace period.
    time.sleep(max(0.0, started + sli_window * 2 - time.time()))
    healthy_at = _wait(lambda: time.time() if load.healthy(sli_window) else None, resolve_timeout)
    sli_back = None
    if healthy_at is not None:
        # The SLIs came back with the last failed request of the fault.
        failed = [s.at + s.seconds for s in load.between(started, healthy_at) if not s.ok]
        sli_back = max(failed, default=started)
        result.sli_back_s = round(sli_back - started, 1)
    for undo in ctx.cleanup:
        undo()
    ctx.cleanup.clear()
    if fingerprint is not None:
        resolved = _wait(
            lambda: find_notification(
                stack.notifications(), expects, started, "resolved", fingerprint
            ),
            resolve_timeout,
        )
        if resolved is None:
            result.problems.append(f"{result.alert} never resolved")
        else:
            result.mttr_s = round(max(resolved[0], sli_back or resolved[0]) - started, 1)
    elif not expects:
        result.mttr_s = result.sli_back_s
    if healthy_at is None:
        result.problems.append("the SLIs did not come back")
    ended = time.time()
    samples = load.between(started, ended)
    result.requests, result.errors = len(samples), load.errors(samples)
    for sample in samples:
        if not sample.ok:
            key = f"{sample.route} {sample.status or 'no response'}"
            result.errors_by_route[key] = result.errors_by_route.get(key, 0) + 1
    result.wrong_service = wrong_service(stack.notifications(), expects, started)
    if result.wrong_service and result.alert is None:
        result.problems.append(f"fired for the wrong service: {', '.join(result.wrong_service)}")
    if result.mttd_s is not None and result.mttd_s > MTTD_BOUND_S:
        result.problems.append(f"MTTD {result.mttd_s} s > {MTTD_BOUND_S:.0f} s")
    if result.mttr_s is not None and result.mttr_s > MTTR_BOUND_S:
        result.problems.append(f"MTTR {result.mttr_s} s > {MTTR_BOUND_S:.0f} s")
    if scenario.surviving_instance and result.requests:
        ratio = result.errors / result.requests
        if ratio >= ERROR_BUDGET:
            result.problems.append(f"{ratio:.2%} of requests failed (target < 0.1%)")
    log(f"[{scenario.name}] done: MTTD {result.mttd_s} s, MTTR {result.mttr_s} s, "
        f"{result.errors}/{result.requests} errors{'; ' if result.problems else ''}"
        f"{'; '.join(result.problems)}")  # fmt: skip
    return result


def _wait(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return None
