"""The keyed hash for many values is the same HMAC-SHA-256 as the one-off ``hash``."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bankhub.security.secrets import SecretHasher


@pytest.mark.parametrize("pepper", [b"p" * 32, b"q" * 64, bytes(range(200))])
@pytest.mark.parametrize("value", ["", "tx-0001-0000001", "Zahlung «ü» — Café", "x" * 500])
def test_keyed_is_the_hash_of_the_same_purpose(pepper: bytes, value: str) -> None:
    hasher = SecretHasher(pepper)
    keyed = hasher.keyed("transaction-bank-id")
    expected = hmac.new(
        pepper, b"transaction-bank-id\x00" + value.encode(), hashlib.sha256
    ).hexdigest()
    assert keyed(value) == hasher.hash(value, purpose="transaction-bank-id") == expected
    # each call starts from the prepared state: an earlier value leaves nothing behind
    assert keyed(value) == expected
    assert hasher.keyed("other")(value) != expected
