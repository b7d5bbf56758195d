"""The data keyring: envelope encryption with rotation (S19–S21).

Data keys are random AES-256 keys kept in the ``data_keys`` table, each wrapped (AES-256-GCM)
by a key-encryption key (KEK) that never enters the database: a file or an environment
variable by default, or a KMS through the ``bankhub.kms`` entry-point group. Every ciphertext
names its data key (``v1.<kid>.…``), so rows written under any live key stay readable.

Rotation is add → promote → rewrap → retire: ``bankhub keys rotate`` adds a key, waits until
every process has had time to load it, then makes it the one new writes use; writes re-encrypt
lazily, ``bankhub keys rewrap`` re-encrypts the rest, and ``bankhub keys retire`` refuses while
any row still uses a key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import utcnow
from bankhub.security.crypto import Box, derive_key
from bankhub.security.models import DataKey

if TYPE_CHECKING:
    from bankhub.config import Settings
    from bankhub.db.engine import Database

KMS_ENTRY_POINTS = "bankhub.kms"
#: the key a keyring starts with: derived from the server secret, as before keys were stored
LEGACY_KID = "k1"
PRIMARY, ACTIVE, RETIRED = "primary", "active", "retired"


class KeyringError(RuntimeError):
    """The keyring cannot be used: no KEK, a KEK that does not open the stored keys, ..."""


class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys. A KMS plug-in implements this."""

    @property
    def id(self) -> str: ...

    def wrap(self, data_key: bytes, aad: bytes) -> str: ...

    def unwrap(self, wrapped: str, aad: bytes) -> bytes: ...


class LocalKek:
    """A 256-bit KEK held by the operator (file or environment), never stored by bankhub."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KeyringError("the key-encryption key must be 32 bytes (base64url of 32 bytes)")
        self._aead = AESGCM(key)
        self._id = "local-" + hashlib.sha256(b"bankhub kek id\x00" + key).hexdigest()[:12]

    @property
    def id(self) -> str:
        return self._id

    def wrap(self, data_key: bytes, aad: bytes) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, data_key, aad)
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def unwrap(self, wrapped: str, aad: bytes) -> bytes:
        raw = base64.urlsafe_b64decode(wrapped)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], aad)
        except InvalidTag:
            raise KeyringError("the key-encryption key does not open this data key") from None


def parse_kek(text: str) -> LocalKek:
    value = text.strip()
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise KeyringError("the key-encryption key is not base64url") from None
    return LocalKek(raw)


def new_kek_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def load_keks(settings: Settings) -> list[KeyEncryptionKey]:
    """The current KEK first, then a previous one still accepted for unwrapping (KEK change)."""
    if settings.kms:
        found = [ep for ep in entry_points(group=KMS_ENTRY_POINTS) if ep.name == settings.kms]
        if not found:
            raise KeyringError(f"no KMS plug-in named {settings.kms!r} is installed")
        factory: Callable[[Settings], list[KeyEncryptionKey]] = found[0].load()
        return factory(settings)
    keks: list[KeyEncryptionKey] = []
    if settings.kek:
        keks.append(parse_kek(settings.kek))
    elif settings.kek_file:
        keks.append(parse_kek(Path(settings.kek_file).read_text()))
    elif settings.is_dev:
        # Dev and tests only: derived from the server secret, so that every process sharing
        # BANKHUB_SECRET_KEY opens the same keys. Production names a KEK of its own.
        keks.append(LocalKek(derive_key(settings.resolved_secret_key(), "kek")))
    else:
        raise KeyringError(
            "BANKHUB_KEK or BANKHUB_KEK_FILE is required when BANKHUB_ENV=production"
        )
    if settings.previous_kek:
        keks.append(parse_kek(settings.previous_kek))
    return keks


def _wrap_aad(kid: str) -> bytes:
    return f"bankhub data key|{kid}".encode()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    state: str
    kek_id: str
    created_at: datetime


class Keyring:
    """Encrypts with the primary data key and decrypts with any live one.

    The keys are read from the database by :meth:`load` (at start, then every
    ``refresh_seconds``). ``keys rotate`` waits two refreshes after adding a key and after
    promoting it, so every process can decrypt with a key before any process writes with it.
    """

    def __init__(
        self,
        keks: list[KeyEncryptionKey],
        legacy_secret: bytes,
        *,
        refresh_seconds: float = 30.0,
    ) -> None:
        if not keks:
            raise KeyringError("a keyring needs a key-encryption key")
        self._keks = keks
        self._legacy = derive_key(legacy_secret, LEGACY_KID)
        self._box: Box | None = None
        self._loaded_at = 0.0
        self.refresh_seconds = refresh_seconds

    @property
    def kek(self) -> KeyEncryptionKey:
        return self._keks[0]

    @property
    def loaded(self) -> bool:
        return self._box is not None

    @property
    def primary(self) -> str:
        return self._require().current

    def stale(self) -> bool:
        return self._box is None or time.monotonic() - self._loaded_at > self.refresh_seconds

    def _unwrap(self, row: DataKey) -> bytes:
        for kek in self._keks:
            if kek.id == row.kek_id:
                return kek.unwrap(row.wrapped_key, _wrap_aad(row.kid))
        raise KeyringError(
            f"data key {row.kid} is wrapped by KEK {row.kek_id}, which is not configured"
        )

    async def load(self, session: AsyncSession) -> None:
        rows = list(
            (await session.execute(select(DataKey).where(DataKey.state != RETIRED))).scalars()
        )
        if not rows:
            rows = [await self._bootstrap(session)]
        keys = {row.kid: self._unwrap(row) for row in rows}
        primaries = [row for row in rows if row.state == PRIMARY]
        current = max(primaries, key=lambda r: r.created_at).kid if primaries else rows[0].kid
        self._box = Box(keys, current)
        self._loaded_at = time.monotonic()

    async def _bootstrap(self, session: AsyncSession) -> DataKey:
        """The first key is the one derived from the server secret, so that data encrypted
        before the keyring existed stays readable; ``keys rotate`` replaces it."""
        row = DataKey(
            kid=LEGACY_KID,
            wrapped_key=self.kek.wrap(self._legacy, _wrap_aad(LEGACY_KID)),
            kek_id=self.kek.id,
            state=PRIMARY,
            created_at=utcnow(),
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Another process bootstrapped at the same moment: use its row.
            found = await session.get(DataKey, LEGACY_KID)
            if found is None:
                raise
            return found
        return row

    async def refresh(self, db: Database) -> None:
        async with db.transaction() as session:
            await self.load(session)

    async def ensure(self, db: Database) -> None:
        if self.stale():
            await self.refresh(db)

    def _require(self) -> Box:
        if self._box is None:
            raise KeyringError("the keyring has not been loaded")
        return self._box

    def knows(self, ciphertext: str) -> bool:
        parts = ciphertext.split(".", 2)
        return len(parts) == 3 and parts[1] in self._require().kids

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        return self._require().encrypt(plaintext, aad)

    def encrypt_many(self, items: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return self._require().encrypt_many(items)

    def decrypt(self, ciphertext: str, aad: bytes) -> bytes:
        return self._require().decrypt(ciphertext, aad)

    def encrypt_text(self, text: str, aad: bytes) -> str:
        return self._require().encrypt_text(text, aad)

    def decrypt_text(self, ciphertext: str, aad: bytes) -> str:
        return self._require().decrypt_text(ciphertext, aad)


# --- operator actions ---------------------------------------------------------------------------


async def key_infos(session: AsyncSession) -> list[KeyInfo]:
    rows = (await session.execute(select(DataKey).order_by(DataKey.created_at))).scalars()
    return [KeyInfo(r.kid, r.state, r.kek_id, r.created_at) for r in rows]


async def add_key(session: AsyncSession, keyring: Keyring, now: datetime) -> str:
    """A new data key that every process can decrypt with, not yet used for writing."""
    existing = {k.kid for k in await key_infos(session)}
    number = 2
    while f"k{number}" in existing:
        number += 1
    kid = f"k{number}"
    session.add(
        DataKey(
            kid=kid,
            wrapped_key=keyring.kek.wrap(secrets.token_bytes(32), _wrap_aad(kid)),
            kek_id=keyring.kek.id,
            state=ACTIVE,
            created_at=now,
        )
    )
    await session.flush()
    return kid


async def promote(session: AsyncSession, kid: str, now: datetime) -> None:
    rows = list((await session.execute(select(DataKey))).scalars())
    target = next((r for r in rows if r.kid == kid), None)
    if target is None or target.state == RETIRED:
        raise KeyringError(f"no live data key {kid!r}")
    for row in rows:
        if row.state == PRIMARY and row.kid != kid:
            row.state = ACTIVE
    target.state = PRIMARY
    target.promoted_at = now
    await session.flush()


async def retire(session: AsyncSession, kid: str, now: datetime, rows_using: int) -> None:
    row = await session.get(DataKey, kid)
    if row is None:
        raise KeyringError(f"no data key {kid!r}")
    if row.state == PRIMARY:
        raise KeyringError(f"{kid} is the primary key; rotate to another key first")
    if rows_using:
        raise KeyringError(f"{rows_using} values still use {kid}; run `bankhub keys rewrap`")
    row.state = RETIRED
    row.retired_at = now
    await session.flush()


async def rewrap_data_keys(session: AsyncSession, keyring: Keyring) -> int:
    """Wrap every data key under the current KEK (after a KEK change); returns how many."""
    changed = 0
    for row in (await session.execute(select(DataKey))).scalars():
        if row.kek_id == keyring.kek.id:
            continue
        raw = keyring._unwrap(row)
        row.wrapped_key = keyring.kek.wrap(raw, _wrap_aad(row.kid))
        row.kek_id = keyring.kek.id
        changed += 1
    await session.flush()
    return changed


async def open_keyring(settings: Settings, session: AsyncSession) -> Keyring:
    """A loaded keyring for a one-off command."""
    keyring = Keyring(
        load_keks(settings),
        settings.resolved_secret_key(),
        refresh_seconds=settings.keyring_refresh_seconds,
    )
    await keyring.load(session)
    return keyring
