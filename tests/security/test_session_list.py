"""The caller sees and ends their own sessions, and only their own."""

from __future__ import annotations

import uuid

from agora.config import Settings
from agora.services.auth.app import create_app as create_auth
from tests.security.conftest import Account, System

SESSIONS = "/api/v1/auth/sessions"


def _bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access_token}"}


async def _login(system: System, account: Account) -> Account:
    tokens = await system.auth.login(account.username)
    system.auth.client.cookies.clear()
    return Account(
        account.user_id, account.username, tokens["access_token"], tokens["refresh_token"]
    )


async def test_the_list_shows_each_login_once_and_marks_the_current_one(system: System) -> None:
    alice = await system.account("alice")
    phone = await _login(system, alice)
    rotated = await system.auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone.refresh_token}
    )
    assert rotated.status_code == 200  # a rotation stays the same session
    await system.account("bob")  # someone else's sessions are not listed

    listed = await system.auth.client.get(SESSIONS, headers=_bearer(alice))
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert len(items) == 2
    assert [item["current"] for item in items].count(True) == 1
    assert set(items[0]) == {"id", "created_at", "last_refreshed_at", "expires_at", "current"}
    # Most recently refreshed first: the phone's session.
    assert [item["current"] for item in items] == [False, True]


async def test_revoking_a_session_ends_it_and_it_leaves_the_list(system: System) -> None:
    alice = await system.account("alice")
    phone = await _login(system, alice)
    items = (await system.auth.client.get(SESSIONS, headers=_bearer(alice))).json()["items"]
    phone_session = next(item["id"] for item in items if not item["current"])

    ended = await system.auth.client.delete(f"{SESSIONS}/{phone_session}", headers=_bearer(alice))
    assert ended.status_code == 204
    phone_me = await system.posts.get("/api/v1/posts/feed", headers=_bearer(phone))
    assert phone_me.status_code == 401
    assert phone_me.json()["error"]["code"] == "session_ended"
    refresh = await system.auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone.refresh_token}
    )
    assert refresh.status_code == 401
    left = (await system.auth.client.get(SESSIONS, headers=_bearer(alice))).json()["items"]
    assert [item["current"] for item in left] == [True]
    again = await system.auth.client.delete(f"{SESSIONS}/{phone_session}", headers=_bearer(alice))
    assert again.status_code == 404  # ended sessions are not the caller's any more


async def test_another_users_session_is_a_404_and_stays_alive(system: System) -> None:
    alice = await system.account("alice")
    mallory = await system.account("mallory")
    alice_session = (await system.auth.client.get(SESSIONS, headers=_bearer(alice))).json()[
        "items"
    ][0]["id"]
    for target in (alice_session, str(uuid.uuid4()), "not-a-uuid"):
        response = await system.auth.client.delete(f"{SESSIONS}/{target}", headers=_bearer(mallory))
        assert response.status_code == 404, target
        assert response.json()["error"]["code"] == "not_found"
    still = await system.auth.client.get("/api/v1/auth/me", headers=_bearer(alice))
    assert still.status_code == 200


async def test_the_routes_need_a_token(system: System) -> None:
    assert (await system.auth.client.get(SESSIONS)).status_code == 401
    assert (await system.auth.client.delete(f"{SESSIONS}/{uuid.uuid4()}")).status_code == 401


def test_the_session_routes_document_every_status_with_the_error_schema(
    settings: Settings,
) -> None:
    spec = create_auth(settings).openapi()
    paths = spec["paths"]
    # Every routed request can also meet the gateway's 408/502 and the deadline's 504
    # (agora.openapi_errors); a body adds 415.
    shared = {"400", "408", "429", "502", "503", "504"}
    expected = {
        ("post", "/api/v1/auth/password"): {"204", "401", "403", "413", "415", "422"} | shared,
        ("get", "/api/v1/auth/sessions"): {"200", "401"} | shared,
        ("delete", "/api/v1/auth/sessions/{session_id}"): {"204", "401", "404", "422"} | shared,
    }
    for (method, path), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (method, path)
        for status in statuses - {"200", "204"}:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)
        for status in {"429", "503"} & statuses:
            assert "Retry-After" in responses[status]["headers"]
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
