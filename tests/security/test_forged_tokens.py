"""Forged access tokens are refused by all three services: 401 on HTTP, no WebSocket."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.security.conftest import System, protected
from tests.security.forge import forged_tokens


@pytest.fixture
async def forged(system: System) -> dict[str, str]:
    victim = await system.account("victim")
    other = await system.account("other")
    return forged_tokens(
        system.auth.keystore.current(), user_id=victim.user_id, genuine=other.access_token
    )


async def test_forged_tokens_are_refused_over_http_by_every_service(
    system: System, forged: dict[str, str]
) -> None:
    victim_token = (await system.auth.login("victim"))["access_token"]
    for service, client in system.clients().items():
        # The real thing works, so every 401 below is the forgery's doing.
        path = protected(service, victim_token)
        genuine = await client.get(path, headers={"Authorization": f"Bearer {victim_token}"})
        assert genuine.status_code == 200, (service, genuine.text)
        for name, token in forged.items():
            response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (service, name, response.text)
            assert response.json()["error"]["code"] == "invalid_token", (service, name)
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("via", ["header", "query"])
async def test_forged_tokens_open_no_websocket(
    system: System, forged: dict[str, str], via: str
) -> None:
    url = system.realtime.ws_url
    for name, token in forged.items():
        headers = {"Authorization": f"Bearer {token}"} if via == "header" else {}
        target = url if via == "header" else f"{url}?access_token={token}"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(target, additional_headers=headers, open_timeout=5):
                pytest.fail(f"a socket opened with the {name} token")
        assert refused.value.response.status_code == 403, name
    assert len(system.realtime.app.runtime.parts.hub) == 0
