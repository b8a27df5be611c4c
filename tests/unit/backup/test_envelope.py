"""The logical dump's encryption: round trip, wrong passphrase told apart from damage."""

from __future__ import annotations

import io
import os

import pytest

from agora.backup import envelope

PASSPHRASE = "a passphrase of more than sixteen"


def sealed(data: bytes, passphrase: str = PASSPHRASE) -> bytes:
    out = io.BytesIO()
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert envelope.encrypt(chunks, out, passphrase) == len(data)
    return out.getvalue()


def opened(blob: bytes, passphrase: str = PASSPHRASE) -> bytes:
    out = io.BytesIO()
    envelope.decrypt(io.BytesIO(blob), out, passphrase)
    return out.getvalue()


def test_round_trip_and_no_plaintext() -> None:
    data = b"PGDMP" + b"secret row " * 5000 + os.urandom(3000)
    blob = sealed(data)
    assert b"secret row" not in blob
    assert blob.startswith(envelope.MAGIC)
    assert opened(blob) == data
    assert sealed(data) != blob  # a fresh salt and nonce each time


def test_wrong_passphrase_is_named_before_decrypting() -> None:
    with pytest.raises(envelope.WrongPassphrase):
        opened(sealed(b"data"), "another passphrase entirely")


@pytest.mark.parametrize("where", ["header", "body", "tag"])
def test_any_flipped_byte_is_damage(where: str) -> None:
    blob = bytearray(sealed(b"x" * 10_000))
    index = {"header": len(envelope.MAGIC) + 3, "body": envelope.HEADER + 5000, "tag": -1}[where]
    blob[index] ^= 0x01
    # A flipped salt byte derives another key: it reads as a wrong passphrase, never as data.
    with pytest.raises((envelope.Damaged, envelope.WrongPassphrase)):
        opened(bytes(blob))


def test_truncated_or_foreign_files_are_refused() -> None:
    blob = sealed(b"y" * 100)
    with pytest.raises(envelope.Damaged):
        opened(blob[:-5])
    with pytest.raises(envelope.Damaged, match="not an Agora logical dump"):
        opened(b"PGDMP\x01\x0e" + b"\x00" * 200)
