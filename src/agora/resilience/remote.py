"""``agora breakers``: list or reset the circuit breakers of every running instance.

Targets are the ``--target URL`` options, or else every instance listed in the state file
``agora up`` writes into its workdir (``.agora/instances.json``). Each call goes to the
instance's own port (``/admin/breakers``) with ``AGORA_ADMIN_TOKEN`` as a bearer token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import httpx

STATE_FILE = "instances.json"


@dataclass(frozen=True, slots=True)
class Outcome:
    target: str
    ok: bool
    detail: str


def targets_from_state(workdir: Path) -> list[str]:
    path = workdir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise LookupError(f"no {path}: is `agora up` running there? or pass --target") from None
    return [str(item["url"]) for item in state["instances"]]


def _call(client: httpx.Client, method: str, url: str, token: str) -> httpx.Response:
    return client.request(method, url, headers={"Authorization": f"Bearer {token}"})


def reset_everywhere(targets: list[str], name: str, token: str) -> list[Outcome]:
    outcomes = []
    with httpx.Client(timeout=5.0) as client:
        for target in targets:
            url = f"{target.rstrip('/')}/admin/breakers/{name}/reset"
            try:
                response = _call(client, "POST", url, token)
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(target, False, f"unreachable: {exc}"))
                continue
            ok = response.status_code == HTTPStatus.NO_CONTENT
            outcomes.append(Outcome(target, ok, "reset" if ok else _error(response)))
    return outcomes


def list_everywhere(targets: list[str], token: str) -> list[Outcome]:
    outcomes = []
    with httpx.Client(timeout=5.0) as client:
        for target in targets:
            try:
                response = _call(client, "GET", f"{target.rstrip('/')}/admin/breakers", token)
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(target, False, f"unreachable: {exc}"))
                continue
            if response.status_code != HTTPStatus.OK:
                outcomes.append(Outcome(target, False, _error(response)))
                continue
            states = ", ".join(f"{b['name']}={b['state']}" for b in response.json()["breakers"])
            outcomes.append(Outcome(target, True, states))
    return outcomes


def _error(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    return f"HTTP {response.status_code}: {message}"
