"""No e-mail address, JWT, bearer/refresh token, password or Authorization/Cookie header
survives a log line, whoever writes it (structlog or a standard-library logger)."""

from __future__ import annotations

import logging

import jwt
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.observability.redaction import REDACTED, redact_text, redact_value
from tests.log_capture import JsonLines

# Free text around the secret, as a message would have it (never glued to it by letters).
_words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40).map(
    lambda text: f"{text} "
)
_claims = st.dictionaries(
    st.text(min_size=1, max_size=10),
    st.one_of(st.text(max_size=30), st.integers(), st.booleans()),
    max_size=6,
)


@st.composite
def jwts(draw: st.DrawFn) -> str:
    key = draw(st.binary(min_size=32, max_size=64))
    return jwt.encode(draw(_claims), key, algorithm="HS256")


@given(before=_words, email=st.emails(), after=_words)
def test_no_email_survives(before: str, email: str, after: str) -> None:
    assert email not in redact_text(f"{before}{email} {after}")


@given(before=_words, token=jwts(), after=_words)
def test_no_jwt_survives(before: str, token: str, after: str) -> None:
    text = redact_text(f"{before}{token} {after}")
    assert token not in text
    assert token.split(".")[2] not in text or len(token.split(".")[2]) < 8


@given(email=st.emails(), token=jwts())
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_nothing_survives_the_whole_pipeline(json_logs: JsonLines, email: str, token: str) -> None:
    structlog.get_logger("test").info(f"login by {email}", header=f"Bearer {token}", user=email)
    logging.getLogger("some.library").warning("sent %s with %s", email, token)
    lines = json_logs()
    assert len(lines) == 2
    output = str(lines)
    assert email not in output
    assert token not in output


def test_sensitive_keys_are_replaced_whole_at_any_depth() -> None:
    event = {
        "password": "hunter2",
        "refresh_token": "abc",
        "request": {"headers": {"Authorization": "x", "Cookie": "sid=1", "accept": "json"}},
        "items": [{"email": "no-at-sign-here"}],
    }
    assert redact_value(event) == {
        "password": REDACTED,
        "refresh_token": REDACTED,
        "request": {"headers": {"Authorization": REDACTED, "Cookie": REDACTED, "accept": "json"}},
        "items": [{"email": REDACTED}],
    }


def test_secrets_in_free_text() -> None:
    text = redact_text(
        "GET /ws?access_token=abc.def&x=1 refresh_token=r3fr3sh password: hunter2\n"
        "Authorization: Basic dXNlcjpwYXNz\nCookie: agora_refresh=zzz; csrf=yyy\n"
        "called with bearer opaque-token-value"
    )
    for secret in ("abc.def", "r3fr3sh", "hunter2", "dXNlcjpwYXNz", "zzz", "yyy", "opaque-token"):
        assert secret not in text
    assert "x=1" in text


def test_plain_lines_are_left_alone() -> None:
    line = "GET /api/v1/posts/feed 200 in 3 ms (cursor=abc)"
    assert redact_text(line) == line


def test_exceptions_are_redacted_too(json_logs: JsonLines) -> None:
    try:
        raise ValueError("no such user alice@example.com")  # noqa: TRY301  # a real traceback to log
    except ValueError:
        logging.getLogger("library").exception("failed")
        structlog.get_logger("agora").exception("failed again")
    lines = json_logs()
    assert len(lines) == 2
    for line in lines:
        assert "ValueError" in line["error.stack_trace"]
        assert "alice@example.com" not in line["error.stack_trace"]
