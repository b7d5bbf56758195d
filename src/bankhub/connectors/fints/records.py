"""Turn the MT940/MT942 text a FinTS bank sends (HIKAZ) into bankhub transaction records.

The text is read by bankhub's MT940 reader (:mod:`bankhub.statements.mt940`), the one that
reads MT940 statement files, so that a booking reads alike whether the bank sent it over FinTS
or the user exported it to a file. What is FinTS's own: python-fints joins the parts of an
answer with ``@@``, the booked (MT940) and pending (MT942) texts come apart, and the account's
currency (from the user parameter data) stands in for a statement that states none.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from bankhub.connectors.base import ProviderUnavailable, TransactionRecord, TransactionStatus
from bankhub.statements import camt, mt940
from bankhub.statements.model import StatementAccount, StatementError


@dataclass(frozen=True, slots=True)
class Statement:
    """The transactions of one HIKAZ answer and the newest closing balance it states."""

    rows: list[TransactionRecord]
    closing_balance: Decimal | None = None
    closing_currency: str | None = None
    closing_date: date | None = None


def _read(text: str, currency: str) -> tuple[StatementAccount, ...]:
    try:
        return mt940.parse_text(text.replace("@@", "\r\n"), currency=currency).accounts
    except StatementError as exc:
        raise ProviderUnavailable(
            f"The bank's MT940 statement could not be read: {exc.message}"
        ) from None


def statement(booked: str, pending: str, currency: str) -> Statement:
    """Parse booked (MT940) and pending (MT942) text; ``currency`` is the account's.

    ``bank_id`` is the :61: bank reference when the bank gives one (not ``NONREF``) and it is
    unique within the answer; otherwise None, and bankhub dedupes on a fingerprint.
    """
    rows: list[TransactionRecord] = []
    closing: StatementAccount | None = None
    for text, status in ((booked, TransactionStatus.BOOKED), (pending, TransactionStatus.PENDING)):
        if not text.strip():
            continue
        for account in _read(text, currency):
            if status == TransactionStatus.BOOKED and account.closing_balance is not None:
                closing = account
            rows.extend(replace(t, status=status) for t in account.transactions)
    # The reader drops a reference repeated within one text; one repeated between the booked
    # and the pending text is not unique either.
    return _statement(rows, closing)


def _newer(account: StatementAccount, than: StatementAccount | None) -> bool:
    if account.closing_balance is None:
        return False
    return than is None or (account.closing_date or date.min) >= (than.closing_date or date.min)


def camt_statement(booked: list[bytes], pending: list[bytes]) -> Statement:
    """Parse the camt.052 documents of an HICAZ answer with bankhub's camt reader (the one
    that imports camt files): the booked documents' entries as the reader reads them, every
    entry of the pending document pending; the newest closing balance any report states.
    Every camt entry states its currency, so the account's is not needed."""
    rows: list[TransactionRecord] = []
    closing: StatementAccount | None = None
    for documents, status in (
        (booked, None),
        (pending, TransactionStatus.PENDING),
    ):
        for document in documents:
            if not document.strip():
                continue
            try:
                parsed = camt.parse(document)
            except StatementError as exc:
                raise ProviderUnavailable(
                    f"The bank's camt statement could not be read: {exc.message}"
                ) from None
            for account in parsed.accounts:
                if status is None and _newer(account, closing):
                    closing = account
                rows.extend(
                    replace(t, status=status) if status is not None else t
                    for t in account.transactions
                )
    return _statement(rows, closing)


def within(
    rows: list[TransactionRecord], since: date | None, until: date | None
) -> list[TransactionRecord]:
    """Keep the rows booked inside [since, until]: banks may send whole statements."""
    return [
        r
        for r in rows
        if (since is None or r.booking_date >= since) and (until is None or r.booking_date <= until)
    ]


def _statement(rows: list[TransactionRecord], closing: StatementAccount | None) -> Statement:
    """The rows with a bank reference kept only where it is unique in the answer, and the
    closing balance of ``closing`` where it states one."""
    counts = Counter(row.bank_id for row in rows if row.bank_id)
    rows = [replace(r, bank_id=None) if r.bank_id and counts[r.bank_id] > 1 else r for r in rows]
    if closing is None or closing.closing_balance is None:
        return Statement(rows)
    return Statement(
        rows,
        closing_balance=closing.closing_balance,
        closing_currency=closing.currency,
        closing_date=closing.closing_date,
    )
