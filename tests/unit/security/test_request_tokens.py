"""Where a request's token is read from: the Authorization header, or a WebSocket upgrade's
``access_token`` query parameter. The rate limiter and the routes use these same functions,
so both always count and authenticate the same token."""

from __future__ import annotations

from agora.security.dependencies import bearer_token, query_token


def test_bearer_token_from_the_authorization_header() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic dXNlcjpwYXNz") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_query_token_takes_the_first_of_repeated_parameters() -> None:
    assert query_token({"query_string": b"access_token=first&access_token=second"}) == "first"
    assert query_token({"query_string": b"other=1&access_token=abc.def"}) == "abc.def"
    assert query_token({"query_string": b"access_token="}) is None
    assert query_token({"query_string": b""}) is None
    assert query_token({}) is None
