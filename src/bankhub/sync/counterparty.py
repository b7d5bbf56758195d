"""The other party of a transaction, as bankhub stores and returns it in ``meta``.

Connectors name the payer of a credit or the payee of a debit in ``TransactionRecord``
(``counterparty_name``, ``counterparty_account``); every sync stores them the same way:
``meta["counterparty_name"]`` and ``meta["counterparty_account"]``, an IBAN compacted, a card
number (PAN) masked to its last four digits, because a card number is not for a partner to keep.
The checks are python-stdnum's (IBAN mod-97, Luhn).
"""

from __future__ import annotations

from typing import Any

from stdnum import iban, luhn

from bankhub.connectors.base import TransactionRecord

#: ISO/IEC 7812 card numbers are 12 to 19 digits; fewer than 13 are not issued to cardholders
PAN_LENGTHS = range(13, 20)


def is_card_number(value: str) -> bool:
    """A card number as files write it: 13-19 digits (spaces and dashes allowed), Luhn-valid."""
    digits = "".join(value.replace("-", " ").split())
    return digits.isdigit() and len(digits) in PAN_LENGTHS and luhn.is_valid(digits)


def account_shown(value: str | None) -> str | None:
    """How a counterparty's account is shown: a card number masked, an IBAN compacted and in
    upper case, anything else with its spacing tidied."""
    if value is None or not value.strip():
        return None
    if is_card_number(value):
        digits = "".join(ch for ch in value if ch.isdigit())
        return "•••• " + digits[-4:]
    compact = "".join(value.split()).upper()
    if iban.is_valid(compact):
        return compact
    return " ".join(value.split())


def stored_meta(record: TransactionRecord) -> dict[str, Any] | None:
    """The record's ``meta`` with its counterparty added (None when there is nothing to keep)."""
    meta = dict(record.meta) if record.meta else {}
    name = " ".join((record.counterparty_name or "").split())
    if name:
        meta["counterparty_name"] = name
    account = account_shown(record.counterparty_account)
    if account:
        meta["counterparty_account"] = account
    return meta or None
