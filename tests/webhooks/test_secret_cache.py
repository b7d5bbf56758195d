"""Decrypted signing secrets are kept per process, and a rotation is seen at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bankhub.security.crypto import Box, DecryptionError, associated_data
from bankhub.webhooks.services import TABLE, SecretCache

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class CountingBox:
    def __init__(self) -> None:
        self.box = Box.from_secret(b"s" * 40)
        self.opened = 0

    def seal(self, text: str, column: str, endpoint_id: str = "ep1") -> str:
        return self.box.encrypt_text(text, associated_data(7, TABLE, column, endpoint_id))

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        return self.box.encrypt(plaintext, aad)

    def encrypt_many(self, items: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return self.box.encrypt_many(items)

    def decrypt(self, ciphertext: str, aad: bytes) -> bytes:
        self.opened += 1
        return self.box.decrypt(ciphertext, aad)

    def encrypt_text(self, text: str, aad: bytes) -> str:
        return self.box.encrypt_text(text, aad)

    def decrypt_text(self, ciphertext: str, aad: bytes) -> str:
        self.opened += 1
        return self.box.decrypt_text(ciphertext, aad)


def secrets_of(
    cache: SecretCache,
    box: CountingBox,
    current: str,
    previous: str | None = None,
    until: datetime | None = None,
    now: datetime = NOW,
) -> list[str]:
    return cache.signing_secrets(
        box,
        endpoint_id="ep1",
        app_id=7,
        secret_enc=current,
        previous_secret_enc=previous,
        previous_expires_at=until,
        now=now,
    )


def test_a_secret_is_decrypted_once_then_served_from_the_cache() -> None:
    box, cache = CountingBox(), SecretCache()
    sealed = box.seal("whsec_one", "secret")
    assert secrets_of(cache, box, sealed) == ["whsec_one"]
    assert secrets_of(cache, box, sealed) == ["whsec_one"]
    assert box.opened == 1


def test_a_rotation_misses_the_cache_and_the_overlap_is_decided_at_each_use() -> None:
    box, cache = CountingBox(), SecretCache()
    old = box.seal("whsec_old", "secret")
    assert secrets_of(cache, box, old) == ["whsec_old"]
    # rotated: new ciphertexts in the row, the old secret kept for a day
    new, previous = box.seal("whsec_new", "secret"), box.seal("whsec_old", "previous_secret")
    until = NOW + timedelta(days=1)
    assert secrets_of(cache, box, new, previous, until) == ["whsec_new", "whsec_old"]
    later = NOW + timedelta(days=2)
    assert secrets_of(cache, box, new, previous, until, now=later) == ["whsec_new"]
    assert box.opened == 3  # old once; new and previous once each, then cached


def test_the_cache_is_bounded() -> None:
    box, cache = CountingBox(), SecretCache(size=2)
    sealed = [box.seal(f"whsec_{n}", "secret") for n in range(3)]
    for value in sealed:
        secrets_of(cache, box, value)
    secrets_of(cache, box, sealed[0])  # evicted by the third: decrypted again
    assert box.opened == 4


def test_a_ciphertext_of_another_endpoint_does_not_open() -> None:
    box, cache = CountingBox(), SecretCache()
    foreign = box.seal("whsec_x", "secret", endpoint_id="ep2")
    with pytest.raises(DecryptionError):
        secrets_of(cache, box, foreign)
