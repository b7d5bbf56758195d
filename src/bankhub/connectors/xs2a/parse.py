"""NextGenPSD2 JSON to bankhub records. Amounts are strings in the spec and become Decimals."""

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

_AMOUNT = re.compile(r"^-?[0-9]{1,18}(\.[0-9]{1,6})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

#: ISO 20022 ExternalCashAccountType1Code to bankhub account types; anything else is OTHER
_ACCOUNT_TYPES = {
    "CACC": AccountType.CURRENT,
    "TRAN": AccountType.CURRENT,
    "SLRY": AccountType.CURRENT,
    "ODFT": AccountType.CURRENT,
    "SACC": AccountType.CURRENT,
    "SVGS": AccountType.SAVINGS,
    "LLSV": AccountType.SAVINGS,
    "ONDP": AccountType.SAVINGS,
    "MOMA": AccountType.SAVINGS,
    "CARD": AccountType.CREDIT_CARD,
    "LOAN": AccountType.LOAN,
    "MGLD": AccountType.LOAN,
}
#: which balance is "the" balance, and which is the available one, in order of preference
BOOKED_ORDER = ("interimBooked", "closingBooked", "expected", "openingBooked", "interimAvailable")
AVAILABLE_ORDER = ("interimAvailable", "forwardAvailable", "expected")


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def decimal(raw: Any, where: str) -> Decimal:
    """A spec amount string (``-1.50``) as a Decimal; never through float."""
    if isinstance(raw, str) and _AMOUNT.match(raw.strip()):
        return Decimal(raw.strip())
    raise ProviderUnavailable(f"The bank sent {raw!r} as the amount of {where}; not a number")


def iso_date(raw: Any, where: str) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise ProviderUnavailable(f"The bank sent {raw!r} as a date of {where}") from None


def amount(node: Any, where: str) -> tuple[Decimal, str]:
    node = obj(node)
    currency = str(node.get("currency") or "").upper()
    if not _CURRENCY.match(currency):
        raise ProviderUnavailable(f"The bank sent {currency!r} as the currency of {where}")
    return decimal(node.get("amount"), where), currency


def pick_balance(
    balances: Sequence[Mapping[str, Any]], order: Sequence[str], currency: str | None
) -> Mapping[str, Any] | None:
    candidates = [
        b
        for b in balances
        if currency in (None, "XXX") or obj(b.get("balanceAmount")).get("currency") == currency
    ] or list(balances)
    for kind in order:
        for balance in candidates:
            if balance.get("balanceType") == kind:
                return balance
    return None


def account_record(node: Mapping[str, Any], balances: Sequence[Mapping[str, Any]]) -> AccountRecord:
    """One ``accountDetails`` entry with its balances."""
    iban = text(node.get("iban"))
    number = (
        iban or text(node.get("bban")) or text(node.get("maskedPan")) or text(node.get("msisdn"))
    )
    currency = str(node.get("currency") or "").upper()
    name = (
        text(node.get("name"))
        or text(node.get("displayName"))
        or text(node.get("product"))
        or number
        or "Account"
    )
    booked = pick_balance(balances, BOOKED_ORDER, currency)
    if booked is None:
        raise ProviderUnavailable(f"The bank sent no balance for account {name}")
    balance, balance_currency = amount(booked.get("balanceAmount"), f"account {name}")
    available_node = pick_balance(balances, AVAILABLE_ORDER, balance_currency)
    available = (
        amount(available_node.get("balanceAmount"), f"account {name}")[0]
        if available_node is not None
        else None
    )
    owners = [text(o.get("name")) for o in items(node.get("ownerNames"))]
    holder = text(node.get("ownerName")) or ", ".join(o for o in owners if o) or None
    return AccountRecord(
        bank_id=text(node.get("resourceId")),
        name=name,
        type=_ACCOUNT_TYPES.get(str(node.get("cashAccountType") or "CACC"), AccountType.OTHER),
        currency=balance_currency if currency in ("", "XXX") else currency,
        balance=balance,
        available_balance=available,
        number=number,
        iban=iban,
        holder_name=holder,
    )


def _description(node: Mapping[str, Any]) -> str:
    unstructured = node.get("remittanceInformationUnstructuredArray")
    parts: list[str] = []
    if text(node.get("remittanceInformationUnstructured")):
        parts.append(str(text(node.get("remittanceInformationUnstructured"))))
    elif isinstance(unstructured, list):
        parts.extend(s.strip() for s in unstructured if isinstance(s, str) and s.strip())
    structured = node.get("remittanceInformationStructured")
    if not parts and text(structured):
        parts.append(str(text(structured)))
    elif not parts and isinstance(structured, dict) and text(structured.get("reference")):
        parts.append(str(text(structured.get("reference"))))
    if not parts and text(node.get("additionalInformation")):
        parts.append(str(text(node.get("additionalInformation"))))
    return " ".join(parts)


def _meta(node: Mapping[str, Any]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for key in (
        "endToEndId",
        "mandateId",
        "creditorId",
        "bankTransactionCode",
        "proprietaryBankTransactionCode",
        "purposeCode",
        "entryReference",
    ):
        value = text(node.get(key))
        if value:
            meta[key] = value
    for side in ("creditorAccount", "debtorAccount"):
        reference = obj(node.get(side))
        value = text(reference.get("iban")) or text(reference.get("bban"))
        if value:
            meta[side] = value
    return meta


def transaction_record(
    node: Mapping[str, Any], status: TransactionStatus, today: date
) -> TransactionRecord:
    """One ``transactions`` entry; a pending row without dates counts as seen today."""
    bank_id = text(node.get("transactionId")) or text(node.get("entryReference"))
    where = f"transaction {bank_id or '(no id)'}"
    value, currency = amount(node.get("transactionAmount"), where)
    booking = iso_date(node.get("bookingDate"), where)
    value_date = iso_date(node.get("valueDate"), where)
    sides = ("creditorName", "debtorName") if value < 0 else ("debtorName", "creditorName")
    counterparty = text(node.get(sides[0])) or text(node.get(sides[1]))
    return TransactionRecord(
        bank_id=bank_id,
        booking_date=booking or value_date or today,
        amount=value,
        currency=currency,
        description=_description(node) or counterparty or "",
        value_date=value_date,
        merchant=counterparty,
        status=status,
        meta=_meta(node) or None,
    )


def flag(value: bool) -> str:
    """A boolean request header's value (``TPP-Redirect-Preferred: true``)."""
    return "true" if value else "false"


def code_prompt(body: Mapping[str, Any], bank: str, purpose: str = "") -> str:
    """What the user is asked for the bank's one-time code: the bank's own words when it
    gives them, else the chosen method's name; ``purpose`` (" to confirm the payment") says
    what the code is for when the bank does not."""
    method = obj(body.get("chosenScaMethod"))
    extra = text(obj(body.get("challengeData")).get("additionalInformation"))
    label = text(method.get("name")) or text(method.get("authenticationType"))
    prompt = text(body.get("psuMessage")) or (
        f"Enter the code from {label}{purpose}"
        if label
        else f"Enter the one-time code from {bank}{purpose}"
    )
    return f"{prompt} ({extra})" if extra else prompt
