"""POST /api/v1/auth/register: validation, case-insensitive uniqueness, no write on failure."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from tests.integration.auth.conftest import PASSWORD, AuthHarness

REGISTER = "/api/v1/auth/register"


async def test_register_returns_the_public_user(auth: AuthHarness) -> None:
    response = await auth.client.post(
        REGISTER,
        json={
            "username": "Alice_01",
            "email": "Alice@Example.COM",
            "password": PASSWORD,
            "display_name": "<b>Alice</b> &amp; co",
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "display_name", "bio", "created_at"}
    assert body["username"] == "alice_01"
    assert body["display_name"] == "Alice & co"
    assert body["bio"] == ""
    assert body["created_at"].endswith(("Z", "+00:00"))
    stored = await auth.db.fetchval(
        "SELECT password_hash FROM users WHERE id = $1::uuid", body["id"]
    )
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"username": "bob"}, {"username": "BOB", "email": "other@example.com"}),
        ({"email": "bob@example.com"}, {"username": "bobby", "email": "BOB@EXAMPLE.COM"}),
    ],
    ids=["username", "email"],
)
async def test_taken_username_or_email_differing_only_in_case_is_a_conflict(
    auth: AuthHarness, first: dict[str, str], second: dict[str, str]
) -> None:
    base = {"username": "bob", "email": "bob@example.com", "password": PASSWORD}
    assert (await auth.client.post(REGISTER, json={**base, **first})).status_code == 201

    response = await auth.client.post(REGISTER, json={**base, **second})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert await auth.count("users") == 1


async def test_concurrent_sign_ups_with_one_username_create_one_user(auth: AuthHarness) -> None:
    bodies = [
        {"username": "racer", "email": f"racer{i}@example.com", "password": PASSWORD}
        for i in range(4)
    ]

    responses = await asyncio.gather(*(auth.client.post(REGISTER, json=b) for b in bodies))

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert await auth.count("users") == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "a" * 31),
        ("username", "bad-name"),
        ("username", "bad name"),
        ("username", "ünïcode"),
        ("username", "alice\n"),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("password", "short"),
        ("password", "x" * 1025),
        ("display_name", "x" * 51),
        ("display_name", "bell\x07"),
    ],
)
async def test_invalid_fields_are_a_validation_error(
    auth: AuthHarness, field: str, value: str
) -> None:
    body = {"username": "carol", "email": "carol@example.com", "password": PASSWORD}
    body[field] = value

    response = await auth.client.post(REGISTER, json=body)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(detail["field"] == field for detail in error["details"])
    assert await auth.count("users") == 0


async def test_missing_field_is_a_validation_error(auth: AuthHarness) -> None:
    response = await auth.client.post(
        REGISTER, json={"username": "dave", "email": "dave@example.com"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert await auth.count("users") == 0


async def test_malformed_json_is_a_bad_request(auth: AuthHarness) -> None:
    response = await auth.client.post(
        REGISTER, content=b'{"username": "eve",', headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert await auth.count("users") == 0


async def test_display_name_longer_than_50_only_because_of_markup_is_accepted(
    auth: AuthHarness,
) -> None:
    name = "<em>" + "x" * 50 + "</em>"

    user = await auth.register("frank", display_name=name)

    assert user["display_name"] == "x" * 50


async def test_registrations_are_counted_once_each(auth: AuthHarness) -> None:
    def registered() -> float:
        return REGISTRY.get_sample_value("agora_users_registered_total") or 0.0

    before = registered()
    await auth.register("counted")
    duplicate = await auth.client.post(
        REGISTER,
        json={"username": "counted", "email": "other@example.com", "password": PASSWORD},
    )
    assert duplicate.status_code == 409
    assert registered() == before + 1
