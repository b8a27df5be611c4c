"""Refresh-token rotation, reuse detection, CSRF on the cookie path, and logout."""

from __future__ import annotations

import asyncio

from agora.services.auth.service import refresh_token_digest
from tests.integration.auth.conftest import AuthHarness

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


async def _family_rows(auth: AuthHarness, token: str) -> list[tuple[bool, bool]]:
    """(used, revoked) of every token in ``token``'s family."""
    rows = await auth.db.pool.fetch(
        "SELECT used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked "
        "FROM refresh_tokens WHERE family_id = "
        "(SELECT family_id FROM refresh_tokens WHERE token_hash = $1) ORDER BY created_at",
        refresh_token_digest(token),
    )
    return [(row["used"], row["revoked"]) for row in rows]


async def test_refresh_via_body_rotates_the_token(auth: AuthHarness) -> None:
    await auth.register("alice")
    first = await auth.login("alice")
    auth.client.cookies.clear()

    response = await auth.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert "agora_refresh" in response.cookies
    assert await _family_rows(auth, first["refresh_token"]) == [(True, False), (False, False)]
    me = await auth.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert me.status_code == 200


async def test_refresh_via_cookie_with_csrf_header(auth: AuthHarness) -> None:
    await auth.register("alice")
    first = await auth.login("alice")  # the client keeps both cookies
    csrf = auth.client.cookies["agora_csrf"]

    response = await auth.client.post(REFRESH, headers={"X-CSRF-Token": csrf})

    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert auth.client.cookies["agora_refresh"] == second["refresh_token"]
    assert auth.client.cookies["agora_csrf"] != csrf  # a fresh CSRF token per session step


async def test_refresh_via_cookie_without_or_with_a_wrong_csrf_header_is_forbidden(
    auth: AuthHarness,
) -> None:
    await auth.register("alice")
    first = await auth.login("alice")
    csrf = auth.client.cookies["agora_csrf"]

    wrong = csrf[:-1] + ("A" if csrf[-1] != "A" else "B")
    attempts: list[list[tuple[bytes, bytes]]] = [
        [],
        [(b"X-CSRF-Token", wrong.encode())],
        [(b"X-CSRF-Token", b"")],
        [(b"X-CSRF-Token", "é".encode("latin-1"))],  # non-ASCII must not crash the comparison
    ]
    for headers in attempts:
        response = await auth.client.post(REFRESH, headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["error"]["code"] == "csrf_failed"

    # nothing was spent by the refused attempts
    assert await _family_rows(auth, first["refresh_token"]) == [(False, False)]


async def test_reusing_a_spent_token_revokes_the_whole_family(auth: AuthHarness) -> None:
    await auth.register("alice")
    first = await auth.login("alice")
    other_session = await auth.login("alice")
    auth.client.cookies.clear()
    rotated = await auth.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    successor = rotated.json()["refresh_token"]

    reuse = await auth.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "refresh_token_reused"
    assert await _family_rows(auth, first["refresh_token"]) == [(True, True), (False, True)]
    after = await auth.client.post(REFRESH, json={"refresh_token": successor})
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_refresh_token"
    # another login of the same user is a separate family and keeps working
    ok = await auth.client.post(REFRESH, json={"refresh_token": other_session["refresh_token"]})
    assert ok.status_code == 200


async def test_concurrent_refreshes_with_one_token_let_one_win_and_revoke_the_family(
    auth: AuthHarness,
) -> None:
    await auth.register("alice")
    token = (await auth.login("alice"))["refresh_token"]
    auth.client.cookies.clear()

    responses = await asyncio.gather(
        *(auth.client.post(REFRESH, json={"refresh_token": token}) for _ in range(2))
    )

    assert sorted(r.status_code for r in responses) == [200, 401]
    loser = next(r for r in responses if r.status_code == 401)
    assert loser.json()["error"]["code"] == "refresh_token_reused"
    assert all(revoked for _, revoked in await _family_rows(auth, token))


async def test_unknown_and_expired_tokens_are_invalid(auth: AuthHarness) -> None:
    await auth.register("alice")
    token = (await auth.login("alice"))["refresh_token"]
    auth.client.cookies.clear()

    unknown = await auth.client.post(REFRESH, json={"refresh_token": "not-a-real-token"})
    await auth.db.pool.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        refresh_token_digest(token),
    )
    expired = await auth.client.post(REFRESH, json={"refresh_token": token})

    for response in (unknown, expired):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_refresh_token"
    assert await _family_rows(auth, token) == [(False, False)]


async def test_refresh_without_any_token_is_unauthenticated(auth: AuthHarness) -> None:
    response = await auth.client.post(REFRESH)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_logout_revokes_the_family_and_clears_the_cookies(auth: AuthHarness) -> None:
    await auth.register("alice")
    first = await auth.login("alice")
    auth.client.cookies.clear()
    second = (
        await auth.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    ).json()

    response = await auth.client.post(LOGOUT, json={"refresh_token": second["refresh_token"]})

    assert response.status_code == 204
    assert response.content == b""
    cleared = {h.split("=", 1)[0]: h.lower() for h in response.headers.get_list("set-cookie")}
    assert "max-age=0" in cleared["agora_refresh"]
    assert "path=/api/v1/auth" in cleared["agora_refresh"]
    assert "max-age=0" in cleared["agora_csrf"]
    assert await _family_rows(auth, first["refresh_token"]) == [(True, True), (False, True)]
    auth.client.cookies.clear()
    after = await auth.client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401


async def test_logout_via_cookie_needs_the_csrf_header(auth: AuthHarness) -> None:
    await auth.register("alice")
    token = (await auth.login("alice"))["refresh_token"]

    refused = await auth.client.post(LOGOUT)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    assert await _family_rows(auth, token) == [(False, False)]

    csrf = auth.client.cookies["agora_csrf"]
    response = await auth.client.post(LOGOUT, headers={"X-CSRF-Token": csrf})

    assert response.status_code == 204
    assert await _family_rows(auth, token) == [(False, True)]
    assert "agora_refresh" not in auth.client.cookies


async def test_logout_without_a_token_is_unauthenticated_and_unknown_token_is_ignored(
    auth: AuthHarness,
) -> None:
    missing = await auth.client.post(LOGOUT)
    unknown = await auth.client.post(LOGOUT, json={"refresh_token": "never-issued"})

    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthenticated"
    assert unknown.status_code == 204
