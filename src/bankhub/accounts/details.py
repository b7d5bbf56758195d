"""What identifies a person or their money in a transaction, sealed at rest (S19).

The bank's id for the row (``original_id``), the description, the merchant and ``meta``
(counterparty names and accounts, card and booking details: whatever keys a connector or a
statement file put there) are one AES-256-GCM envelope per row, ``transactions.details_enc``,
under the data keyring. One envelope per row rather than one per field: the read path opens a
hundred rows per page, and each opening costs about the same whatever its length
(docs/security.md, "Transactions at rest", has the measurements).

The associated data binds the envelope to its tenant, table, column and row. The row is named by
its unique key, the account and the dedupe key, not by the surrogate id: bulk inserts seal rows in
the slices they encode, before the database hands out ids (SQLite hands them out on insert). A
copy to another row, or to another account, does not open.

Card numbers are masked before sealing (``security.pan``), so nothing opened from here holds one
whole. Rows stored before this envelope existed keep their details in the plain columns until
``bankhub keys rewrap`` (or the sync that next reads them) seals them; :func:`opened` reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import msgspec
from sqlalchemy import Table, null, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account, Transaction
from bankhub.security.crypto import Cipher, associated_data
from bankhub.security.pan import mask_optional, mask_pans, mask_value
from bankhub.security.secrets import SecretHasher

TABLE = "transactions"
COLUMN = "details"
#: the dedupe key's kinds: the bank's own id, or the content fingerprint
BANK_KEY, FINGERPRINT_KEY = "b:", "f:"
#: keyed-hash purposes (the server pepper, as for ``accounts.match_key``)
BANK_ID_PURPOSE = "transaction-bank-id"
FINGERPRINT_PURPOSE = "transaction-fingerprint"


class Details(msgspec.Struct, array_like=True, omit_defaults=True, frozen=True):
    original_id: str
    description: str
    merchant: str | None = None
    meta: dict[str, Any] | None = None


_encode = msgspec.json.Encoder(decimal_format="string").encode
#: the envelope's plaintext back to :class:`Details` (the read path calls it per row)
decode = msgspec.json.Decoder(Details).decode


def masked(
    original_id: str, description: str, merchant: str | None, meta: dict[str, Any] | None
) -> Details:
    """The details as stored: every PAN-looking number masked."""
    return Details(
        original_id=mask_pans(original_id),
        description=mask_pans(description),
        merchant=mask_optional(merchant),
        meta=mask_value(meta) if meta else None,
    )


def aad(app_id: int, account_id: int, dedupe_key: str) -> bytes:
    return f"{app_id}|{TABLE}|{COLUMN}|{account_id}:{dedupe_key}".encode()


def seal(cipher: Cipher, app_id: int, account_id: int, dedupe_key: str, details: Details) -> str:
    return cipher.encrypt(_encode(details), aad(app_id, account_id, dedupe_key))


def seal_many(
    cipher: Cipher, app_id: int, account_id: int, rows: Sequence[tuple[str, Details]]
) -> list[str]:
    """:func:`seal` of each ``(dedupe_key, details)`` of one account, in one call to the
    cipher (a bulk ingest's slice of new rows)."""
    prefix = f"{app_id}|{TABLE}|{COLUMN}|{account_id}:"
    return cipher.encrypt_many([(_encode(fields), (prefix + key).encode()) for key, fields in rows])


def open_sealed(
    cipher: Cipher, app_id: int, account_id: int, dedupe_key: str, sealed: str
) -> Details:
    return decode(cipher.decrypt(sealed, aad(app_id, account_id, dedupe_key)))


class StoredRow(Protocol):
    """The columns :func:`opened` reads: a plain row or an ORM object."""

    app_id: int
    account_id: int
    dedupe_key: str
    details_enc: str | None
    original_id: str | None
    description: str | None
    merchant: str | None
    meta: dict[str, Any] | None


def opened(cipher: Cipher, row: StoredRow) -> Details:
    """A stored row's details: opened from the envelope, or (a row from before the envelope,
    not sealed yet) read from the plain columns and masked on the way out."""
    if row.details_enc is not None:
        return open_sealed(cipher, row.app_id, row.account_id, row.dedupe_key, row.details_enc)
    return masked(row.original_id or "", row.description or "", row.merchant, row.meta)


class RowKeys:
    """A transaction's stored keys, keyed hashes under the server pepper (never the bank's id or
    the content in a reversible form): the fingerprint and the dedupe key."""

    __slots__ = ("_bank", "_content")

    def __init__(self, hasher: SecretHasher) -> None:
        self._bank = hasher.keyed(BANK_ID_PURPOSE)
        self._content = hasher.keyed(FINGERPRINT_PURPOSE)

    def fingerprint(self, digest: str) -> str:
        """The stored fingerprint of a content digest (``sync.engine.fingerprint``)."""
        return self._content(digest)[:40]

    def bank_key(self, bank_id: str) -> str:
        return BANK_KEY + self._bank(bank_id)[:40]

    def content_key(self, fingerprint: str) -> str:
        return FINGERPRINT_KEY + fingerprint

    def from_plain(self, dedupe_key: str, digest: str) -> tuple[str, str]:
        """The dedupe key and fingerprint of a row stored before they were keyed, from its
        ``b:<bank id>`` or ``f:<digest>`` dedupe key and its plain digest."""
        fingerprint = self.fingerprint(digest)
        if dedupe_key.startswith(BANK_KEY):
            return self.bank_key(dedupe_key[len(BANK_KEY) :]), fingerprint
        return self.content_key(self.fingerprint(dedupe_key[len(FINGERPRINT_KEY) :])), fingerprint


class PlainRow(StoredRow, Protocol):
    id: int
    fingerprint: str


#: the columns :func:`seal_plain_rows` needs
PLAIN_COLUMNS = (
    Transaction.id,
    Transaction.app_id,
    Transaction.account_id,
    Transaction.dedupe_key,
    Transaction.fingerprint,
    Transaction.details_enc,
    Transaction.original_id,
    Transaction.description,
    Transaction.merchant,
    Transaction.meta,
)


async def seal_plain_rows(
    session: AsyncSession, cipher: Cipher, keys: RowKeys, rows: Sequence[PlainRow]
) -> int:
    """Seal rows stored before the envelope: keyed keys, masked details in ``details_enc``, the
    plain columns emptied. A row sealed meanwhile by someone else is left alone (compare and
    set on ``details_enc IS NULL``); returns how many this call sealed."""
    table = cast(Table, Transaction.__table__)
    sealed = 0
    for row in rows:
        if row.details_enc is not None:
            continue
        dedupe_key, fingerprint = keys.from_plain(row.dedupe_key, row.fingerprint)
        value = seal(
            cipher,
            row.app_id,
            row.account_id,
            dedupe_key,
            masked(row.original_id or "", row.description or "", row.merchant, row.meta),
        )
        result = await session.execute(
            update(table)
            .where(table.c.id == row.id, table.c.details_enc.is_(None))
            .values(
                dedupe_key=dedupe_key,
                fingerprint=fingerprint,
                details_enc=value,
                original_id=null(),
                description=null(),
                merchant=null(),
                meta=null(),
            )
        )
        sealed += int(getattr(result, "rowcount", 0) or 0)
    return sealed


def account_bank_id(cipher: Cipher, account: Account) -> str | None:
    """The account's bank id (``original_id`` in the API): sealed, or plain in a row stored
    before bank ids were sealed (masked on the way out)."""
    return bank_id_of(cipher, account.app_id, account.id, account.bank_id_enc, account.bank_id)


def bank_id_of(
    cipher: Cipher, app_id: int, account_id: int, sealed: str | None, plain: str | None
) -> str | None:
    """:func:`account_bank_id` from the row's columns (the account list reads plain rows)."""
    if sealed:
        return cipher.decrypt_text(
            sealed, associated_data(app_id, "accounts", "bank_id", account_id)
        )
    return mask_optional(plain)
