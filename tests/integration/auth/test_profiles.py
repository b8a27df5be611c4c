"""GET/PATCH /api/v1/auth/me and GET /api/v1/auth/users/{user_id}."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.conftest import TokenFactory
from tests.integration.auth.conftest import AuthHarness

ME = "/api/v1/auth/me"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_me_returns_the_own_profile_with_email(auth: AuthHarness) -> None:
    user = await auth.register("alice", email="Alice@Example.com", display_name="Alice")
    token = (await auth.login("alice"))["access_token"]

    response = await auth.client.get(ME, headers=_bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user["id"]
    assert body["username"] == "alice"
    assert body["email"] == "Alice@example.com"
    assert body["display_name"] == "Alice"
    assert {"bio", "created_at", "updated_at"} <= set(body)


async def test_patch_me_strips_markup_and_bumps_updated_at(auth: AuthHarness) -> None:
    await auth.register("alice", display_name="Alice")
    token = (await auth.login("alice"))["access_token"]
    before = (await auth.client.get(ME, headers=_bearer(token))).json()

    response = await auth.client.patch(
        ME,
        headers=_bearer(token),
        json={
            "display_name": "<b>Bob</b><script>alert(1)</script>",
            "bio": '<a href="javascript:x()">hi</a> &amp; <img src=x onerror=alert(1)>bye',
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["display_name"] == "Bob"
    assert body["bio"] == "hi & bye"
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(before["updated_at"])
    assert (await auth.client.get(ME, headers=_bearer(token))).json() == body


async def test_patch_me_leaves_omitted_fields_alone(auth: AuthHarness) -> None:
    await auth.register("alice", display_name="Alice")
    token = (await auth.login("alice"))["access_token"]

    response = await auth.client.patch(ME, headers=_bearer(token), json={"bio": "Just me."})

    assert response.json()["display_name"] == "Alice"
    assert response.json()["bio"] == "Just me."


@pytest.mark.parametrize(
    "body",
    [{"bio": "x" * 301}, {"display_name": "nul\x00"}, {"email": "new@example.com"}],
    ids=["bio-too-long", "control-character", "unknown-field"],
)
async def test_patch_me_refuses_invalid_updates(auth: AuthHarness, body: dict[str, str]) -> None:
    await auth.register("alice", display_name="Alice")
    token = (await auth.login("alice"))["access_token"]

    response = await auth.client.patch(ME, headers=_bearer(token), json=body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert (await auth.client.get(ME, headers=_bearer(token))).json()["bio"] == ""


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic YWxpY2U6eA=="}],
    ids=["none", "garbage", "basic"],
)
async def test_me_without_a_valid_token_is_unauthenticated(
    auth: AuthHarness, headers: dict[str, str]
) -> None:
    for response in (
        await auth.client.get(ME, headers=headers),
        await auth.client.patch(ME, headers=headers, json={"bio": "x"}),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] in {"unauthenticated", "invalid_token"}
        assert response.headers["www-authenticate"] == "Bearer"


async def test_token_of_a_deleted_user_is_unauthenticated(auth: AuthHarness) -> None:
    user = await auth.register("alice")
    token = (await auth.login("alice"))["access_token"]
    await auth.db.pool.execute("DELETE FROM users WHERE id = $1::uuid", user["id"])

    get = await auth.client.get(ME, headers=_bearer(token))
    patch = await auth.client.patch(ME, headers=_bearer(token), json={"bio": "x"})

    assert get.status_code == 401
    assert patch.status_code == 401


async def test_token_from_a_key_auth_does_not_trust_is_refused(
    auth: AuthHarness, tokens: TokenFactory
) -> None:
    user = await auth.register("alice")
    foreign = tokens(user["id"])  # the test fixture's key, never stored in signing_keys

    response = await auth.client.get(ME, headers=_bearer(foreign))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_public_profile_has_no_email(auth: AuthHarness) -> None:
    user = await auth.register("alice", display_name="Alice")

    response = await auth.client.get(f"/api/v1/auth/users/{user['id']}")

    assert response.status_code == 200
    assert response.json() == user
    assert "email" not in response.json()


# A NUL (%00) is not an id but crafted input: 422, see tests/security/test_crafted_input.py.
@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-uuid", "1", "' OR 1=1 --"])
async def test_unknown_or_malformed_user_id_is_not_found(auth: AuthHarness, user_id: str) -> None:
    response = await auth.client.get(f"/api/v1/auth/users/{user_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
