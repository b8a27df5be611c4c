"""Where a request's token is read from: the Authorization header, or a WebSocket upgrade's
``access_token`` query parameter. One identity step reads it for the rate limiter and the
routes, so both always count and authenticate the same token; a request naming two tokens is
refused rather than guessed at."""

from __future__ import annotations

import pytest

from agora.security.identity import AmbiguousCredentials, bearer_token, presented_token


def _scope(kind: str, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> dict[str, object]:
    return {"type": kind, "headers": headers, "query_string": query}


def test_bearer_token_from_the_authorization_header() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic dXNlcjpwYXNz") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_query_token_only_for_websocket_upgrades() -> None:
    assert presented_token(_scope("websocket", [], b"other=1&access_token=abc.def")) == "abc.def"
    assert presented_token(_scope("websocket", [], b"access_token=")) is None
    assert presented_token(_scope("websocket", [])) is None
    assert presented_token(_scope("http", [], b"access_token=abc.def")) is None
    # The same token twice is one token.
    same = _scope("websocket", [(b"authorization", b"Bearer t")], b"access_token=t&access_token=t")
    assert presented_token(same) == "t"


@pytest.mark.parametrize(
    ("kind", "headers", "query"),
    [
        ("http", [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer a")], b""),
        ("http", [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], b""),
        ("websocket", [(b"authorization", b"Bearer a")], b"access_token=b"),
        ("websocket", [], b"access_token=a&access_token=b"),
    ],
)
def test_two_tokens_are_ambiguous(
    kind: str, headers: list[tuple[bytes, bytes]], query: bytes
) -> None:
    with pytest.raises(AmbiguousCredentials):
        presented_token(_scope(kind, headers, query))
