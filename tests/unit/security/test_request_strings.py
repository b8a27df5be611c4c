"""Every string a route accepts (body field, path or query parameter, in every service, found by
walking the apps' routes) passes ``agora.security.strings``; and that check refuses what
PostgreSQL and HTTP headers cannot carry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

from agora.config import Settings
from agora.observability.route_templates import effective_routes
from agora.security.strings import HeaderText, Text, header_safe, storable
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from agora.services.realtime.app import create_app as create_realtime

_CHECKS = (storable, header_safe)


def _checked(schema: dict[str, Any]) -> bool:
    function = schema.get("function")
    return isinstance(function, dict) and function.get("function") in _CHECKS


def _contains_check(node: object) -> bool:
    if isinstance(node, dict):
        return _checked(node) or any(_contains_check(v) for v in node.values())
    if isinstance(node, list):
        return any(_contains_check(v) for v in node)
    return False


def unchecked_strings(node: object, where: str, guarded: bool = False) -> Iterator[str]:
    """Paths of ``str`` schemas no storable/header_safe validator wraps. A ``chain`` runs every
    step in turn, so one checked step guards its siblings."""
    if isinstance(node, list):
        for item in node:
            yield from unchecked_strings(item, where, guarded)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "str" and not guarded:
        yield where
    guarded = guarded or _checked(node)
    if node.get("type") == "chain" and _contains_check(node["steps"]):
        guarded = True
    for key, value in node.items():
        if key != "metadata":
            yield from unchecked_strings(value, f"{where}.{key}", guarded)


def _inputs(app: FastAPI) -> Iterator[tuple[str, Any]]:
    for path, route in effective_routes(app.routes):
        if not isinstance(route, APIRoute):
            continue
        pending = [route.dependant]
        while pending:
            dependant = pending.pop()
            pending.extend(dependant.dependencies)
            for field in (
                dependant.path_params
                + dependant.query_params
                + dependant.header_params
                + dependant.cookie_params
                + dependant.body_params
            ):
                info = field.field_info
                annotation = (
                    Annotated[(info.annotation, *info.metadata)]
                    if info.metadata
                    else info.annotation
                )
                yield f"{sorted(route.methods or ())} {path} {field.name}", annotation


def _apps() -> list[FastAPI]:
    settings = Settings()
    return [create_auth(settings), create_posts(settings), create_realtime(settings)]


def test_every_route_input_string_is_checked() -> None:
    inputs = [item for app in _apps() for item in _inputs(app)]
    # The walk must see the routes' real inputs, or the assertion below proves nothing.
    names = {where for where, _ in inputs}
    assert "['POST'] /api/v1/auth/login body" in names
    assert "['GET'] /api/v1/posts/feed cursor" in names
    assert "['GET'] /api/v1/realtime/presence/{user_id} user_id" in names
    missing = [
        found
        for where, annotation in inputs
        for found in unchecked_strings(TypeAdapter(annotation).core_schema, where)
    ]
    assert missing == []


def test_the_walk_finds_an_unchecked_string() -> None:
    class Careless(BaseModel):
        checked: Text
        forgotten: str

    found = list(unchecked_strings(TypeAdapter(Careless).core_schema, "Careless"))
    assert len(found) == 1
    assert "forgotten" in found[0]


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "lone \ud800", "\udfff"])
def test_text_refuses_what_postgresql_cannot_store(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Text).validate_python(value)


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "\r\n", "snow\u2603", "nul\x00"])
def test_header_text_refuses_what_a_header_cannot_carry(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(HeaderText).validate_python(value)


@pytest.mark.parametrize("value", ["", "plain", "Zoë 😀 ✓", "tab\tand\nnewline"])
def test_text_keeps_what_it_can_store(value: str) -> None:
    assert TypeAdapter(Text).validate_python(value) == value


def test_header_text_keeps_latin_1() -> None:
    assert TypeAdapter(HeaderText).validate_python("token-é_0") == "token-é_0"
