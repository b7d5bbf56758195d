"""A bulk ingest seals a slice of rows in one call: each envelope is what ``seal`` makes, bound to
its own row, under a nonce of its own."""

from __future__ import annotations

import pytest

from bankhub.accounts import details
from bankhub.security.crypto import Box, DecryptionError

BOX = Box.from_secret(b"s" * 40)


def test_each_envelope_opens_for_its_row_only_and_nonces_differ() -> None:
    rows = [
        (f"b:key-{n}", details.masked(f"id-{n}", f"Café «{n}» 4111 1111 1111 1111", None, None))
        for n in range(200)
    ]
    sealed = details.seal_many(BOX, 7, 9, rows)
    assert len(sealed) == len(rows)
    for (key, fields), envelope in zip(rows, sealed, strict=True):
        assert details.open_sealed(BOX, 7, 9, key, envelope) == fields
        assert envelope.startswith("v1.k1.")
        assert not set("=+/") & set(envelope)
    # bound to the tenant, the account and the row's key, as one sealed alone is
    with pytest.raises(DecryptionError):
        details.open_sealed(BOX, 7, 9, rows[1][0], sealed[0])
    with pytest.raises(DecryptionError):
        details.open_sealed(BOX, 8, 9, rows[0][0], sealed[0])
    with pytest.raises(DecryptionError):
        details.open_sealed(BOX, 7, 10, rows[0][0], sealed[0])
    # a fresh nonce per envelope, also for identical plaintext and associated data
    twice = details.seal_many(BOX, 7, 9, [rows[0], rows[0]])
    nonces = {envelope[len("v1.k1.") :][:16] for envelope in [*sealed, *twice]}
    assert len(nonces) == len(sealed) + 2
    assert details.seal_many(BOX, 7, 9, []) == []


def test_the_batch_and_one_by_one_envelopes_open_alike() -> None:
    fields = details.masked("id-1", "Miete", "Vermieter", {"iban": "DE89370400440532013000"})
    one = details.seal(BOX, 1, 2, "f:abc", fields)
    (many,) = details.seal_many(BOX, 1, 2, [("f:abc", fields)])
    assert details.open_sealed(BOX, 1, 2, "f:abc", one) == details.open_sealed(
        BOX, 1, 2, "f:abc", many
    )
