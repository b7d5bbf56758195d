"""Accounts' and transactions' wire shapes, and how a row becomes one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Row

from bankhub.accounts import details
from bankhub.accounts import services as accounts
from bankhub.accounts.details import account_bank_id, bank_id_of
from bankhub.accounts.models import Account
from bankhub.api.schemas import VERSION
from bankhub.connectors.base import payment_of
from bankhub.money import format_amount
from bankhub.security.crypto import Cipher
from bankhub.security.pan import mask_pans


class AccountOut(msgspec.Struct):
    id: int
    original_id: str
    login_id: int
    name: str
    #: null when no source ever stated the account's balance (a statement file without one)
    balance: str | None
    currency: str
    type: str


class AccountListEnvelope(msgspec.Struct):
    data: list[AccountOut]
    version: str = VERSION


class TransactionOut(msgspec.Struct, omit_defaults=True):
    id: int
    original_id: str
    date: str
    amount: str
    currency: str
    description: str
    category: str
    meta: dict[str, Any] | None
    #: the payment bankhub initiated that this debit is (docs/payments.md); present only then
    payment_id: str | None = None


class TransactionListEnvelope(msgspec.Struct):
    data: list[TransactionOut]
    version: str = VERSION


def account_out(account: Account, cipher: Cipher) -> AccountOut:
    return AccountOut(
        id=account.id,
        original_id=account_bank_id(cipher, account) or f"acc-{account.id}",
        login_id=account.login_id,
        name=mask_pans(account.name),
        balance=None
        if account.balance is None
        else format_amount(account.balance, account.currency),
        currency=account.currency,
        type=account.type,
    )


def account_row_out(row: Row[Any], cipher: Cipher) -> AccountOut:
    """:func:`account_out` of a row of ``accounts.ACCOUNT_COLUMNS`` (the same answer)."""
    account_id, app_id, login_id, name, balance, currency, kind, sealed, plain = row
    return AccountOut(
        id=account_id,
        original_id=bank_id_of(cipher, app_id, account_id, sealed, plain) or f"acc-{account_id}",
        login_id=login_id,
        name=mask_pans(name),
        balance=None if balance is None else format_amount(balance, currency),
        currency=currency,
        type=kind,
    )


def wire_meta(row: accounts.TransactionView) -> dict[str, Any] | None:
    """``meta`` as the API shows it: what the bank or file gave, plus bankhub's marks (added
    keys only): ``status: "pending"`` on an item not booked yet, and on a booked item that
    replaced one, ``pending_transaction_id``, the id the pending item had (it is gone)."""
    meta = row.meta
    if row.status == accounts.PENDING:
        meta = {**(meta or {}), "status": accounts.PENDING}
    if row.pending_transaction_id is not None:
        meta = {**(meta or {}), "pending_transaction_id": row.pending_transaction_id}
    return meta


def transaction_out(row: accounts.TransactionView) -> TransactionOut:
    return TransactionOut(
        id=row.id,
        original_id=row.original_id,
        date=row.date.isoformat(),
        amount=format_amount(row.amount, row.currency),
        currency=row.currency,
        description=row.description,
        category=row.category,
        meta=wire_meta(row),
        payment_id=_payment_id(row),
    )


#: where a row's meta keeps the ``EndToEndId``: statement files (camt, MT940 ``EREF``) and the
#: sandbox write ``end_to_end_id``, Berlin Group banks (XS2A, GoCardless) ``endToEndId``
END_TO_END_KEYS = ("end_to_end_id", "endToEndId")


def _payment_id(row: accounts.TransactionView) -> str | None:
    """The payment a debit carries bankhub's ``EndToEndId`` of (``connectors.base``)."""
    if row.amount >= 0 or not row.meta:
        return None
    for key in END_TO_END_KEYS:
        reference = row.meta.get(key)
        found = payment_of(reference) if isinstance(reference, str) else None
        if found:
            return found[0]
    return None


# --- a page of ``GET /v2/transaction`` written from its rows ---------------------------------

_PAGE_ENCODER = msgspec.json.Encoder()
_PAGE_END = b',"version":"' + VERSION.encode() + b'"}'


def page_body(rows: Sequence[Row[Any]], cipher: Cipher, app_id: int) -> bytes | None:
    """The whole ``{"data": [...], "version": "v2"}`` of a page of ``accounts.API_COLUMNS``
    rows, byte for byte what :class:`TransactionListEnvelope` of ``transaction_out`` of
    ``accounts.opened_rows`` encodes to; ``None`` when a row is not sealed (rows stored before
    details were sealed take that way).

    One pass and one struct per row (not a ``TransactionView`` and then a ``TransactionOut``),
    encoded here once. Splicing each row's sealed ``meta`` into the answer as the JSON it was
    sealed as (``msgspec.Raw``) was measured too, and cost more than decoding and encoding it:
    at these sizes the Python work per row is the cost, not msgspec's."""
    prefix = f"{app_id}|{details.TABLE}|{details.COLUMN}|"
    decrypt, decode = cipher.decrypt, details.decode
    items: list[TransactionOut] = []
    append = items.append
    for (
        row_id,
        account_id,
        dedupe_key,
        day,
        amount,
        currency,
        category,
        status,
        pending_id,
        sealed,
    ) in rows:
        if sealed is None:
            return None
        fields = decode(decrypt(sealed, f"{prefix}{account_id}:{dedupe_key}".encode()))
        meta = fields.meta
        # as ``wire_meta`` and ``_payment_id`` do for a view
        if status == accounts.PENDING:
            meta = {**(meta or {}), "status": accounts.PENDING}
        if pending_id is not None:
            meta = {**(meta or {}), "pending_transaction_id": pending_id}
        payment_id = None
        if amount < 0 and meta:
            for key in END_TO_END_KEYS:
                reference = meta.get(key)
                found = payment_of(reference) if isinstance(reference, str) else None
                if found:
                    payment_id = found[0]
                    break
        append(
            TransactionOut(
                row_id,
                fields.original_id,
                day.isoformat(),
                format_amount(amount, currency),
                currency,
                fields.description,
                category,
                meta,
                payment_id,
            )
        )
    return b'{"data":' + _PAGE_ENCODER.encode(items) + _PAGE_END
