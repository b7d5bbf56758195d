"""Open Banking JSON (OBReadAccount6, OBReadBalance1, OBReadTransaction6) to bankhub records.

Amounts are strings with a separate ``CreditDebitIndicator`` in the spec; they become signed
Decimals (debits negative), never floats. Dates are the day the bank states (the date part of
its ``BookingDateTime``), as a UK statement shows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    ProviderUnavailable,
    TransactionRecord,
    TransactionStatus,
)
from bankhub.connectors.xs2a.parse import items, obj, text

#: OBActiveOrHistoricCurrencyAndAmount: up to 13 digits and 5 decimals
_AMOUNT = re.compile(r"^\d{1,13}(\.\d{1,5})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ACCOUNT_TYPES = {
    "CurrentAccount": AccountType.CURRENT,
    "Savings": AccountType.SAVINGS,
    "CreditCard": AccountType.CREDIT_CARD,
    "ChargeCard": AccountType.CREDIT_CARD,
    "Loan": AccountType.LOAN,
    "Mortgage": AccountType.LOAN,
    "EMoney": AccountType.CURRENT,
    "PrePaidCard": AccountType.OTHER,
}
#: which balance is "the" balance, and which the available one, in order of preference
BOOKED_ORDER = ("InterimBooked", "ClosingBooked", "Expected", "OpeningBooked", "InterimCleared")
AVAILABLE_ORDER = ("InterimAvailable", "ClosingAvailable", "ForwardAvailable", "Expected")
#: identification schemes, by what bankhub keeps of them
IBAN_SCHEMES = frozenset({"UK.OBIE.IBAN", "IBAN"})
STATUS = {"Booked": TransactionStatus.BOOKED, "Pending": TransactionStatus.PENDING}


def signed_amount(node: Any, indicator: Any, where: str) -> tuple[Decimal, str]:
    """A spec amount with its ``CreditDebitIndicator``: debits are negative."""
    node = obj(node)
    raw, currency = node.get("Amount"), str(node.get("Currency") or "").upper()
    if not isinstance(raw, str) or not _AMOUNT.match(raw.strip()):
        raise ProviderUnavailable(f"The bank sent {raw!r} as the amount of {where}; not a number")
    if not _CURRENCY.match(currency):
        raise ProviderUnavailable(f"The bank sent {currency!r} as the currency of {where}")
    if indicator not in ("Credit", "Debit"):
        raise ProviderUnavailable(f"The bank sent {indicator!r} as the direction of {where}")
    value = Decimal(raw.strip())
    return (-value if indicator == "Debit" else value), currency


def day(raw: Any, where: str) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise ProviderUnavailable(f"The bank sent {raw!r} as a date of {where}") from None


def _pick(balances: Sequence[Mapping[str, Any]], order: Sequence[str]) -> Mapping[str, Any] | None:
    for kind in order:
        for balance in balances:
            if balance.get("Type") == kind:
                return balance
    return None


def account_record(node: Mapping[str, Any], balances: Sequence[Mapping[str, Any]]) -> AccountRecord:
    """One ``Data.Account`` entry with the ``Data.Balance`` entries of its ``AccountId``."""
    identifiers = items(node.get("Account"))
    iban = next(
        (text(i.get("Identification")) for i in identifiers if i.get("SchemeName") in IBAN_SCHEMES),
        None,
    )
    number = next(
        (
            text(i.get("Identification"))
            for i in identifiers
            if i.get("SchemeName") not in IBAN_SCHEMES and text(i.get("Identification"))
        ),
        None,
    )
    holder = next((text(i.get("Name")) for i in identifiers if text(i.get("Name"))), None)
    currency = str(node.get("Currency") or "").upper()
    name = (
        text(node.get("Nickname"))
        or text(node.get("Description"))
        or holder
        or number
        or iban
        or "Account"
    )
    booked = _pick(balances, BOOKED_ORDER)
    if booked is None:
        raise ProviderUnavailable(f"The bank sent no balance for account {name}")
    balance, balance_currency = signed_amount(
        booked.get("Amount"), booked.get("CreditDebitIndicator"), f"account {name}"
    )
    available_node = _pick(balances, AVAILABLE_ORDER)
    available = (
        signed_amount(
            available_node.get("Amount"),
            available_node.get("CreditDebitIndicator"),
            f"account {name}",
        )[0]
        if available_node is not None
        else None
    )
    return AccountRecord(
        bank_id=text(node.get("AccountId")),
        name=name,
        type=_ACCOUNT_TYPES.get(str(node.get("AccountSubType")), AccountType.OTHER),
        currency=currency if _CURRENCY.match(currency) else balance_currency,
        balance=balance,
        available_balance=available,
        number=number or iban,
        iban=iban,
        holder_name=holder,
        balance_date=day(booked.get("DateTime"), f"account {name}"),
    )


def _meta(node: Mapping[str, Any]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for key in ("TransactionReference", "StatementReference"):
        value = text(node.get(key))
        if value:
            meta[key] = value
    code = obj(node.get("ProprietaryBankTransactionCode"))
    if text(code.get("Code")):
        meta["ProprietaryBankTransactionCode"] = str(text(code.get("Code")))
    bank_code = obj(node.get("BankTransactionCode"))
    if text(bank_code.get("Code")):
        meta["BankTransactionCode"] = f"{bank_code.get('Code')}/{bank_code.get('SubCode') or ''}"
    category = text(obj(node.get("MerchantDetails")).get("MerchantCategoryCode"))
    if category:
        meta["MerchantCategoryCode"] = category
    return meta


def transaction_record(node: Mapping[str, Any], today: date) -> TransactionRecord | None:
    """One ``Data.Transaction`` entry; a rejected one is none (it never moved money)."""
    status = STATUS.get(str(node.get("Status")))
    if status is None:
        return None
    bank_id = text(node.get("TransactionId"))
    where = f"transaction {bank_id or '(no id)'}"
    value, currency = signed_amount(node.get("Amount"), node.get("CreditDebitIndicator"), where)
    booking = day(node.get("BookingDateTime"), where)
    value_date = day(node.get("ValueDateTime"), where)
    merchant = text(obj(node.get("MerchantDetails")).get("MerchantName"))
    other = obj(node.get("CreditorAccount") if value < 0 else node.get("DebtorAccount"))
    counterparty = text(other.get("Name")) or merchant
    return TransactionRecord(
        bank_id=bank_id,
        booking_date=booking or value_date or today,
        amount=value,
        currency=currency,
        description=text(node.get("TransactionInformation")) or counterparty or "",
        value_date=value_date,
        merchant=merchant or counterparty,
        status=status,
        meta=_meta(node) or None,
        counterparty_name=counterparty,
        counterparty_account=text(other.get("Identification")),
    )
