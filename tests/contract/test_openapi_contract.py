"""The OpenAPI description is the truth: every operation of the three services, driven with
requests that schemathesis generates from the service's own description (schema-valid ones,
and schema-invalid ones), answers only statuses its description lists, with bodies and
headers that match them, and never refuses a schema-valid request as invalid (422
``validation_error``). Real PostgreSQL and Redis (the security suite's system)."""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agora.config import Settings
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from agora.services.realtime.app import create_app as create_realtime
from tests.security.conftest import Account, System
from tests.security.test_fuzz_routes import Population, assert_contract

_CHECKS = [
    status_code_conformance,
    response_schema_conformance,
    response_headers_conformance,
    content_type_conformance,
]
_DESCRIPTIONS = {
    "auth": create_auth(Settings()).openapi(),
    "posts": create_posts(Settings()).openapi(),
    "realtime": create_realtime(Settings()).openapi(),
}


Operation = APIOperation[Any, Any, Any, Any]


@cache
def operations(service: str) -> list[Operation]:
    schema = schemathesis.openapi.from_dict(_DESCRIPTIONS[service])
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results  # a valid description
    return [result.ok() for result in results if isinstance(result, Ok)]


def _cases(operation: Operation, real_ids: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Generated cases, half of them with a real id in the path (so that the routes behind a
    lookup are reached, not only their 404), and some schema-invalid ones."""
    names = [p.name for p in operation.path_parameters]
    real = st.fixed_dictionaries({name: st.sampled_from(real_ids) for name in names})
    return st.one_of(
        operation.as_strategy(),
        real.flatmap(lambda values: operation.as_strategy(path_parameters=values)),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )


async def _send(client: httpx.AsyncClient, case: Any, account: Account | None) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    headers = dict(kwargs.get("headers") or {})
    # schemathesis may draw a bearer header of its own ("Bearer "): a real HTTP client would
    # not send trailing whitespace (h11 refuses it), and what it means is "a bad token".
    if "Authorization" in headers:
        headers["Authorization"] = headers["Authorization"].strip()
    if account is not None and case.operation.definition.raw.get("security"):
        headers.update(account.headers)
    content = kwargs.get("data")
    return await client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=headers,
        cookies=kwargs.get("cookies") or None,
        json=kwargs.get("json"),
        content=content.encode() if isinstance(content, str) else content,
    )


def assert_truthful(case: Any, response: httpx.Response) -> None:
    """What a client generated from the description may rely on."""
    request = {"method": case.method, "url": case.formatted_path}
    assert_contract(response, request)  # no 5xx; every 4xx is the error contract's body
    case.validate_response(response, checks=_CHECKS)
    if case.meta is None or case.meta.generation.mode is GenerationMode.POSITIVE:
        refused = response.status_code == 422 and response.json()["error"]["code"]
        assert refused != "validation_error", (case.as_curl_command(), response.text)


@cache
def strategies(
    service: str, real_ids: tuple[str, ...]
) -> list[tuple[Operation, st.SearchStrategy[Any]]]:
    """Built once per run: schemathesis's strategies are costly to construct."""
    return [(operation, _cases(operation, real_ids)) for operation in operations(service)]


@pytest.mark.parametrize("service", ["auth", "posts", "realtime"])
@settings(
    max_examples=10,  # each example sends one request to every operation: 2-30 s a service
    deadline=None,
    # No shrinking: an example is a request to every operation, and shrinking one took over
    # five minutes here; the failure message names the request (as curl) already.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    # The system is built once per service and shared by its examples, on purpose.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
@given(data=st.data())
async def test_every_answer_is_one_the_description_lists(
    system: System, population: Population, service: str, data: st.DataObject
) -> None:
    """Each example sends one generated request to every operation of the service (drawing
    the operation instead would leave most of them untried in a bounded run)."""
    client = system.clients()[service]
    for operation, cases in strategies(service, population.ids):
        case = data.draw(cases, label=operation.label)
        authenticated = data.draw(st.just(True) | st.booleans(), label="authenticated")
        response = await _send(client, case, population.alice if authenticated else None)
        assert_truthful(case, response)


def test_every_operation_is_driven() -> None:
    labels = {op.label for service in _DESCRIPTIONS for op in operations(service)}
    assert "POST /api/v1/auth/register" in labels
    assert "DELETE /api/v1/posts/{post_id}/like" in labels
    assert "GET /api/v1/realtime/presence/{user_id}" in labels
    assert len(labels) == 23
