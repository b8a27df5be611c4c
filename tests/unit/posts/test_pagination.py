"""Keyset cursors: exact round trips, opaque URL-safe text, every malformed value refused."""

from __future__ import annotations

import base64
import contextlib
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agora.services.posts.pagination import (
    MAX_CURSOR_LENGTH,
    Cursor,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
)


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def test_round_trip_keeps_microseconds_and_id() -> None:
    stamp = datetime(2026, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
    item = uuid.uuid4()
    cursor = encode_cursor(stamp, item)
    assert decode_cursor(cursor) == Cursor(created_at=stamp, id=item)


def test_cursor_is_url_safe_and_bounded() -> None:
    cursor = encode_cursor(datetime.now(UTC), str(uuid.uuid4()))
    assert cursor.isascii()
    assert not set(cursor) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(cursor) <= MAX_CURSOR_LENGTH


def test_other_time_zones_denote_the_same_instant() -> None:
    local = datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    decoded = decode_cursor(encode_cursor(local, uuid.uuid4()))
    assert decoded.created_at == local
    assert decoded.created_at.utcoffset() == timedelta(0)


def test_naive_timestamps_are_not_encoded() -> None:
    with pytest.raises(ValueError, match="timezone"):
        encode_cursor(datetime(2026, 1, 1), uuid.uuid4())


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.uuids(),
)
def test_round_trip_property(stamp: datetime, item: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(stamp, item)) == Cursor(created_at=stamp, id=item)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "!!!",
        "a",
        "not base64 at all",
        "djF8",
        "x" * (MAX_CURSOR_LENGTH + 1),
        base64.b64encode(b"v1|2026-01-01T00:00:00+00:00|" + b"/" * 40).decode(),
        _b64("v1|2026-01-01T00:00:00+00:00"),
        _b64("v1|2026-01-01T00:00:00+00:00|not-a-uuid"),
        _b64("v1|yesterday|00000000-0000-0000-0000-000000000000"),
        _b64("v1|2026-01-01T00:00:00|00000000-0000-0000-0000-000000000000"),
        _b64("v2|2026-01-01T00:00:00+00:00|00000000-0000-0000-0000-000000000000"),
        _b64("v1|2026-01-01T00:00:00+00:00|00000000-0000-0000-0000-000000000000|extra"),
        base64.urlsafe_b64encode(b"\xff\xfe\x00garbage").decode(),
        "éé",
    ],
)
def test_garbage_is_rejected(value: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(value)


@given(st.text(max_size=120))
def test_decode_never_raises_anything_but_invalid_cursor(value: str) -> None:
    with contextlib.suppress(InvalidCursor):
        decode_cursor(value)


_OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(st.datetimes(timezones=_OFFSETS), st.uuids())
@example(datetime.min.replace(tzinfo=timezone(timedelta(hours=14))), uuid.UUID(int=0))
@example(datetime.max.replace(tzinfo=timezone(timedelta(hours=-14))), uuid.UUID(int=0))
def test_any_well_formed_cursor_decodes_to_a_utc_instant_or_is_invalid(
    stamp: datetime, item: uuid.UUID
) -> None:
    # Near year 1 or 9999 a far offset leaves datetime's range once converted to UTC, which
    # the database driver does: that must be InvalidCursor here, not an OverflowError later.
    try:
        cursor = decode_cursor(_b64(f"v1|{stamp.isoformat()}|{item}"))
    except InvalidCursor:
        return
    assert cursor.created_at.astimezone(UTC) == stamp
