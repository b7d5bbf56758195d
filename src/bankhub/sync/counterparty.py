"""The other party of a transaction, as bankhub stores and returns it in ``meta``.

Connectors name the payer of a credit or the payee of a debit in ``TransactionRecord``
(``counterparty_name``, ``counterparty_account``); every sync stores them the same way:
``meta["counterparty_name"]`` and ``meta["counterparty_account"]``, an IBAN compacted, a card
number (PAN) masked to its last four digits, because a card number is not for a partner to keep.
The Luhn check is python-stdnum's.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from stdnum import luhn

from bankhub.connectors.base import TransactionRecord

#: ISO/IEC 7812 card numbers are 12 to 19 digits; fewer than 13 are not issued to cardholders
PAN_LENGTHS = range(13, 20)
#: the shape of an IBAN (country, check digits, up to 30 more); formatting needs no checksum
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}")


def is_card_number(value: str) -> bool:
    """A card number as files write it: 13-19 digits (spaces and dashes allowed), Luhn-valid."""
    digits = "".join(value.replace("-", " ").split())
    return digits.isdigit() and len(digits) in PAN_LENGTHS and luhn.is_valid(digits)


# Counterparties repeat (the same shop, landlord, employer): each is worked out once.
@lru_cache(maxsize=16_384)
def account_shown(value: str | None) -> str | None:
    """How a counterparty's account is shown: a card number masked, an IBAN compacted and in
    upper case, anything else with its spacing tidied."""
    if value is None or not value.strip():
        return None
    if is_card_number(value):
        digits = "".join(ch for ch in value if ch.isdigit())
        return "•••• " + digits[-4:]
    compact = "".join(value.split()).upper()
    if _IBAN.fullmatch(compact):
        return compact
    return " ".join(value.split())


def stored_meta(record: TransactionRecord) -> dict[str, Any] | None:
    """The record's ``meta`` with its counterparty added (None when there is nothing to keep)."""
    meta = dict(record.meta) if record.meta else {}
    if record.counterparty_name:
        name = " ".join(record.counterparty_name.split())
        if name:
            meta["counterparty_name"] = name
    if record.counterparty_account:
        account = account_shown(record.counterparty_account)
        if account:
            meta["counterparty_account"] = account
    return meta or None
