"""Turn the MT940/MT942 text a FinTS bank sends (HIKAZ) into bankhub transaction records."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import mt940

from bankhub.connectors.base import TransactionRecord, TransactionStatus

#: ``?31`` under its own key (the counterparty account), RC/RD signed as the reversals they are
_OPTIONS = mt940.Options(
    applicant_iban=True,
    merge_keeps_values=True,
    reversal_sign=True,
    case_insensitive_marks=True,
)
_NO_REFERENCE = {"", "NONREF"}


@dataclass(frozen=True, slots=True)
class Statement:
    """The transactions of one HIKAZ answer and the newest closing balance it states."""

    rows: list[TransactionRecord]
    closing_balance: Decimal | None = None
    closing_currency: str | None = None
    closing_date: date | None = None


def _plain_date(value: Any) -> date | None:
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _parse(text: str) -> mt940.models.Transactions:
    # python-fints joins split answers with "@@" and some banks send "-0000" offsets.
    text = text.replace("@@", "\r\n").replace("-0000", "+0000")
    transactions = mt940.models.Transactions(options=_OPTIONS)
    transactions.parse(text)
    return transactions


def _record(
    data: dict[str, Any], status: TransactionStatus, fallback_currency: str
) -> tuple[str | None, TransactionRecord]:
    amount = data.get("amount")
    value = getattr(amount, "amount", None)
    if not isinstance(value, Decimal):
        raise ValueError("an MT940 entry has no amount")
    value_date = _plain_date(data.get("date"))
    booking_date = _plain_date(data.get("entry_date")) or value_date
    if booking_date is None:
        raise ValueError("an MT940 entry has no date")
    currency = str(getattr(amount, "currency", None) or fallback_currency).upper()
    purpose = _text(data.get("purpose"))
    posting = _text(data.get("posting_text"))
    meta = {
        key: text
        for key, text in (
            ("applicant_iban", _text(data.get("applicant_iban") or data.get("gvc_applicant_iban"))),
            ("applicant_bic", _text(data.get("applicant_bin") or data.get("gvc_applicant_bin"))),
            ("posting_text", posting),
            ("end_to_end_reference", _text(data.get("end_to_end_reference"))),
            ("mandate_reference", _text(data.get("additional_position_reference"))),
            ("creditor_id", _text(data.get("applicant_creditor_id"))),
            ("transaction_code", _text(data.get("transaction_code") or data.get("id"))),
        )
        if text
    }
    return (
        _text(data.get("bank_reference")),
        TransactionRecord(
            bank_id=None,
            booking_date=booking_date,
            amount=value,
            currency=currency,
            description=purpose or posting or "",
            value_date=value_date,
            merchant=_text(data.get("applicant_name")),
            status=status,
            meta=meta or None,
        ),
    )


def statement(booked: str, pending: str, currency: str) -> Statement:
    """Parse booked (MT940) and pending (MT942) text; ``currency`` fills entries without one.

    ``bank_id`` is the :61: bank reference when the bank gives one (not ``NONREF``) and it is
    unique within the answer; otherwise None, and bankhub dedupes on a fingerprint.
    """
    parsed: list[tuple[str | None, TransactionRecord]] = []
    closing: Any = None
    for text, status in ((booked, TransactionStatus.BOOKED), (pending, TransactionStatus.PENDING)):
        if not text.strip():
            continue
        transactions = _parse(text)
        if status == TransactionStatus.BOOKED:
            closing = transactions.data.get("final_closing_balance") or closing
        parsed.extend(_record(t.data, status, currency) for t in transactions)
    counts = Counter(ref for ref, _ in parsed if ref and ref.upper() not in _NO_REFERENCE)
    rows = [
        replace(row, bank_id=ref) if ref and counts.get(ref) == 1 else row for ref, row in parsed
    ]
    balance = getattr(getattr(closing, "amount", None), "amount", None)
    if not isinstance(balance, Decimal):
        return Statement(rows)
    return Statement(
        rows,
        closing_balance=balance,
        closing_currency=str(getattr(closing.amount, "currency", None) or currency).upper(),
        closing_date=_plain_date(getattr(closing, "date", None)),
    )


def within(
    rows: list[TransactionRecord], since: date | None, until: date | None
) -> list[TransactionRecord]:
    """Keep the rows booked inside [since, until]: banks may send whole statements."""
    return [
        r
        for r in rows
        if (since is None or r.booking_date >= since) and (until is None or r.booking_date <= until)
    ]
