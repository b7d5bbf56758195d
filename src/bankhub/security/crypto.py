"""AES-256-GCM for data that must be read back (webhook signing secrets, later connector state).

Every ciphertext names its key (``v1.<kid>.<base64url(nonce || ciphertext+tag)>``) and is bound
by associated data to where it belongs (tenant, table, column, row): a ciphertext copied to
another row does not decrypt. The data key is derived from the server secret with HKDF; a
keyring with key-encryption keys, rotation and rewrap builds on this format.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "v1"
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


class DecryptionError(ValueError):
    """The ciphertext is malformed, names an unknown key, or belongs elsewhere."""


def associated_data(tenant: int | str, table: str, column: str, row: int | str) -> bytes:
    return f"{tenant}|{table}|{column}|{row}".encode()


def derive_key(secret: bytes, kid: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"bankhub data key {kid}".encode()
    ).derive(secret)


class Cipher(Protocol):
    """What code that encrypts fields needs: a :class:`Box`, or the database-backed keyring."""

    def encrypt(self, plaintext: bytes, aad: bytes) -> str: ...

    def encrypt_many(self, items: Sequence[tuple[bytes, bytes]]) -> list[str]: ...

    def decrypt(self, ciphertext: str, aad: bytes) -> bytes: ...

    def encrypt_text(self, text: str, aad: bytes) -> str: ...

    def decrypt_text(self, ciphertext: str, aad: bytes) -> str: ...


class Box:
    """Encrypts with the current key; decrypts with any key it knows by id."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current key must be one of the keys")
        if any(len(key) != 32 for key in keys.values()):
            raise ValueError("AES-256 keys are 32 bytes")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = current

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @classmethod
    def from_secret(cls, secret: bytes) -> Box:
        return cls({"k1": derive_key(secret, "k1")}, "k1")

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(12)  # fresh 96-bit nonce per encryption
        sealed = self._keys[self.current].encrypt(nonce, plaintext, aad)
        token = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{FORMAT}.{self.current}.{token}"

    def encrypt_many(self, items: Sequence[tuple[bytes, bytes]]) -> list[str]:
        """:meth:`encrypt` of each ``(plaintext, aad)``, as many fresh random nonces drawn
        from the OS in one call. A bulk ingest seals every row it stores: one ``os.urandom``
        per row and ``base64``'s layers cost about as much as the AES-GCM itself."""
        aes = self._keys[self.current].encrypt
        prefix = f"{FORMAT}.{self.current}."
        nonces = os.urandom(12 * len(items))
        to_text = binascii.b2a_base64
        out: list[str] = []
        append = out.append
        for at, (plaintext, aad) in enumerate(items):
            nonce = nonces[12 * at : 12 * at + 12]
            raw = to_text(nonce + aes(nonce, plaintext, aad), newline=False)
            append(prefix + raw.translate(_TO_URLSAFE).rstrip(b"=").decode())
        return out

    def decrypt(self, ciphertext: str, aad: bytes) -> bytes:
        try:
            version, kid, token = ciphertext.split(".", 2)
        except ValueError:
            raise DecryptionError("not a bankhub ciphertext") from None
        if version != FORMAT or kid not in self._keys:
            raise DecryptionError(f"unknown format or key id {kid!r}")
        # base64url by hand: urlsafe_b64decode's layers cost as much as the AES-GCM opening,
        # and the read path opens a hundred values per page (surplus padding is ignored)
        try:
            raw = binascii.a2b_base64(token.encode().translate(_FROM_URLSAFE) + b"==")
        except binascii.Error:
            raise DecryptionError("not a bankhub ciphertext") from None
        try:
            return self._keys[kid].decrypt(raw[:12], raw[12:], aad)
        except InvalidTag:
            raise DecryptionError("ciphertext does not belong here or was altered") from None

    def encrypt_text(self, text: str, aad: bytes) -> str:
        return self.encrypt(text.encode(), aad)

    def decrypt_text(self, ciphertext: str, aad: bytes) -> str:
        return self.decrypt(ciphertext, aad).decode()
