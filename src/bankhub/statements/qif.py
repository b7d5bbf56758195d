"""QIF (Quicken Interchange Format) bank and card exports.

QIF is a line format: ``!Type:Bank`` (or ``CCard``, ``Cash``, ``Oth A``, ``Oth L``) opens a list
of records, each line a one-letter field (``D`` date, ``T``/``U`` amount, ``P`` payee, ``M`` memo,
``N`` check number or reference, ``L`` category, ``C`` cleared status) and ``^`` ends a record.
Written here: the grammar is small, and bankhub needs what a general QIF library does not give,
the line of a bad field and the date order read from the whole file.

QIF names no currency and no account number, and writes dates in the exporting program's
locale: ``MM/DD/YYYY``, ``M/D'YY`` (US Quicken), ``DD/MM/YYYY`` or ``DD.MM.YYYY``. The day/month
order is read from the file: a first number above 12 anywhere means day first, a second number
above 12 month first; dotted dates are day first; a file that never tells is read month first
(Quicken's own order) unless the caller says otherwise. Split lines (``S``/``$``/``E``) are
kept as the one transaction they split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation

from bankhub.connectors.base import AccountType, TransactionRecord
from bankhub.statements.model import ParsedStatement, StatementAccount, StatementError

_TYPES = {
    "bank": AccountType.CURRENT,
    "cash": AccountType.OTHER,
    "ccard": AccountType.CREDIT_CARD,
    "oth a": AccountType.OTHER,
    "oth l": AccountType.LOAN,
}
_DATE = re.compile(r"(\d{1,2})\s*([/.\-])\s*(\d{1,2})\s*(['/.\-]?)\s*(\d{2}|\d{4})")
_FORMAT = "qif"


def sniff(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return bool(re.match(rb"!(Type:|Account)", head, re.IGNORECASE))


def _lines(data: bytes) -> Iterator[tuple[int, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", "replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.rstrip()


def parse(
    data: bytes, currency: str | None = None, *, day_first: bool | None = None
) -> ParsedStatement:
    """Read a QIF file; ``currency`` is the account's (QIF states none, and none is guessed)."""
    if currency is None:
        raise StatementError(
            "a QIF file states no currency: give the account's currency with the file",
            format=_FORMAT,
            problem="no_currency",
        )
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise StatementError(
            f"{currency!r} is not a currency code", format=_FORMAT, problem="no_currency"
        )
    account_type: AccountType | None = None
    records: list[dict[str, tuple[int, str]]] = []
    current: dict[str, tuple[int, str]] = {}
    for number, line in _lines(data):
        if line.startswith("!"):
            header = line[1:].strip()
            if header.lower().startswith("type:"):
                kind = header[5:].strip().lower()
                if kind not in _TYPES:
                    raise StatementError(
                        f"line {number}: !Type:{header[5:].strip()} is not a bank, cash or card "
                        "list (investment and category lists are not statements)",
                        format=_FORMAT,
                    )
                account_type = _TYPES[kind]
            continue
        if account_type is None:
            raise StatementError(f"line {number}: a record before any !Type line", format=_FORMAT)
        code, value = line[0], line[1:].strip()
        if code == "^":
            if current:
                records.append(current)
            current = {}
        elif code in "SE$":
            continue  # split lines: the record's T is the whole amount
        else:
            current.setdefault(code, (number, value))
    if current:
        records.append(current)
    if account_type is None or not records:
        raise StatementError(
            "the QIF file holds no transactions", format=_FORMAT, problem="no_transactions"
        )
    order = day_first if day_first is not None else _day_first(records)
    transactions = tuple(_record(r, order, currency) for r in records)
    return ParsedStatement(
        format=_FORMAT,
        accounts=(
            StatementAccount(currency=currency, type=account_type, transactions=transactions),
        ),
    )


def _day_first(records: list[dict[str, tuple[int, str]]]) -> bool:
    for record in records:
        m = _DATE.search(record.get("D", (0, ""))[1])
        if m is None:
            continue
        if m.group(2) == "." or int(m.group(1)) > 12:
            return True
        if int(m.group(3)) > 12:
            return False
    return False


def _record(
    record: dict[str, tuple[int, str]], day_first: bool, currency: str
) -> TransactionRecord:
    first = min(n for n, _ in record.values())
    if "D" not in record:
        raise StatementError(f"line {first}: a record without a date (D line)", format=_FORMAT)
    if "T" not in record and "U" not in record:
        raise StatementError(f"line {first}: a record without an amount (T line)", format=_FORMAT)
    line, raw = record.get("T") or record["U"]
    try:
        amount = Decimal(_plain(raw))
    except InvalidOperation:
        raise StatementError(f"line {line}: {raw!r} is not an amount", format=_FORMAT) from None
    if not amount.is_finite():
        raise StatementError(f"line {line}: {raw!r} is not an amount", format=_FORMAT)
    day = _date(*record["D"], day_first)
    payee = record.get("P", (0, ""))[1] or None
    memo = record.get("M", (0, ""))[1]
    meta = {
        key: record[code][1]
        for code, key in (("N", "reference"), ("L", "qif_category"), ("C", "cleared"))
        if code in record and record[code][1]
    }
    return TransactionRecord(
        bank_id=None,
        booking_date=day,
        amount=amount,
        currency=currency,
        description=" - ".join(p for p in (memo,) if p) or payee or "",
        merchant=payee,
        counterparty_name=payee,
        meta=meta or None,
    )


def _plain(raw: str) -> str:
    """An amount without grouping and with a "." decimal mark: US programs write ``1,200.00``,
    German ones ``1.200,00`` (a comma followed by one or two digits at the end is a decimal
    comma)."""
    text = raw.replace(" ", "")
    if re.search(r",\d{1,2}$", text):
        return text.replace(".", "").replace(",", ".")
    return text.replace(",", "")


def _year(digits: str, mark: str) -> int:
    """Quicken writes 2000 and later as ``'YY`` and earlier years as ``/YY``; other programs
    write two digits for recent years."""
    if len(digits) == 4:
        return int(digits)
    if mark == "'" or int(digits) < 70:
        return 2000 + int(digits)
    return 1900 + int(digits)


def _date(line: int, raw: str, day_first: bool) -> date:
    m = _DATE.fullmatch(raw.strip())
    try:
        if m is None:
            raise ValueError(raw)
        a, b, mark, year = int(m.group(1)), int(m.group(3)), m.group(4), m.group(5)
        day, month = (a, b) if day_first else (b, a)
        return date(_year(year, mark), month, day)
    except ValueError:
        order = "DD/MM/YYYY" if day_first else "MM/DD/YYYY"
        raise StatementError(
            f"line {line}: {raw!r} is not a date (read as {order})", format=_FORMAT
        ) from None
