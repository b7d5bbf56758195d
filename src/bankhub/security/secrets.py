"""Issued secrets: generated from ``secrets``, shown once, stored only as keyed hashes (S1)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Callable

_CLIENT_ID_ALPHABET = string.ascii_letters + string.digits


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
        state of the pepper and the purpose is prepared once and copied for each value."""
        prepared = hmac.new(self._pepper, purpose.encode() + b"\x00", hashlib.sha256)

        def digest(value: str) -> str:
            state = prepared.copy()
            state.update(value.encode())
            return state.hexdigest()

        return digest
