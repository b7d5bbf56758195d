"""Issued secrets: generated from ``secrets``, shown once, stored only as keyed hashes (S1)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Callable

_CLIENT_ID_ALPHABET = string.ascii_letters + string.digits
#: RFC 2104's inner and outer pads, as translation tables applied to the padded key
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def new_client_id() -> str:
    """A public identifier in the seed's style (``Tu5dvG07KVpx6b``), 16 characters."""
    return "".join(secrets.choice(_CLIENT_ID_ALPHABET) for _ in range(16))


def new_uuid_shaped_secret() -> str:
    """128 random bits written like the seed's sample secrets (8-4-4-4-12 hex digits)."""
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def new_api_secret() -> str:
    """256 random bits, URL-safe, for service-secrets and app-secrets."""
    return secrets.token_urlsafe(32)


class SecretHasher:
    """HMAC-SHA-256 under the server pepper: a database leak does not reveal usable secrets."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 32:
            raise ValueError("the hashing pepper must be at least 32 bytes")
        self._pepper = pepper

    def hash(self, secret: str, *, purpose: str) -> str:
        message = purpose.encode() + b"\x00" + secret.encode()
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    def keyed(self, purpose: str) -> Callable[[str], str]:
        """``hash(value, purpose=purpose)`` as a function, for hashing many values: the HMAC
        state of the pepper and the purpose is prepared once and copied for each value.

        HMAC (RFC 2104) by its two SHA-256 states rather than through ``hmac.HMAC``: a first
        sync hashes two values per transaction, and ``HMAC.copy``/``hexdigest`` are Python
        wrappers around the same two hash states that cost more than the hashing itself
        (4.7 against 7.4 µs a value). ``tests/unit/test_secrets.py`` holds it to ``hmac``."""
        block = hashlib.sha256().block_size
        key = self._pepper if len(self._pepper) <= block else hashlib.sha256(self._pepper).digest()
        key = key.ljust(block, b"\x00")
        inner = hashlib.sha256(key.translate(_IPAD))
        inner.update(purpose.encode() + b"\x00")
        start_inner, start_outer = inner.copy, hashlib.sha256(key.translate(_OPAD)).copy

        def digest(value: str) -> str:
            state = start_inner()
            state.update(value.encode())
            outer = start_outer()
            outer.update(state.digest())
            return outer.hexdigest()

        return digest
