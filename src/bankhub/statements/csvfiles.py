"""Bank CSV exports, recognised by their header row, and any other CSV through a column mapping.

Each known export is one :class:`Profile` declaration (``PROFILES``); adding a bank is adding a
profile. A file whose header matches no profile is not claimed; it can still be read with
:func:`parse_with_mapping` and a :class:`CsvMapping`.

Readings: a two-digit year ``yy`` is 20yy; a booking date is the date as written. PayPal's
account movement is the net amount (``Netto`` = ``Brutto`` + ``Gebühr``), and a row is booked
when it changed the PayPal balance (``Auswirkung auf Guthaben`` is ``Soll`` or ``Haben``,
holds included, as the ``Guthaben`` column shows); ``Memo`` rows are pending.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from bankhub.connectors.base import AccountType, TransactionRecord, TransactionStatus
from bankhub.statements.model import ParsedStatement, StatementAccount, StatementError

Column = str | int
#: how far down a file the header row may be (after a preamble)
_HEADER_SEARCH_ROWS = 40
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}")
_CURRENCY_SIGNS = {"€": "EUR", "$": "USD", "£": "GBP"}


@dataclass(frozen=True, slots=True)
class Profile:
    """How one CSV layout is read. Columns are header names, or 0-based positions."""

    id: str
    columns: tuple[str, ...]  # header cells that identify the layout (all must be present)
    date: Column
    description: tuple[Column, ...]
    amount: Column | None = None
    debit: Column | None = None  # an outflow column, when the layout splits debit and credit
    credit: Column | None = None
    delimiter: str = ";"
    date_format: str = "%d.%m.%Y"
    decimal: str = ","
    thousands: str = "."
    currency: Column | None = None
    fixed_currency: str | None = None
    value_date: Column | None = None
    merchant: Column | None = None
    #: the counterparty column for outflows, when it differs from ``merchant`` (inflows)
    merchant_debit: Column | None = None
    #: the counterparty's IBAN or account number
    counterparty_account: Column | None = None
    bank_id: Column | None = None
    account: Column | None = None  # a column naming the account's IBAN, when there is one
    status: Column | None = None
    statuses: tuple[tuple[str, TransactionStatus], ...] = ()
    #: the balance after each row (PayPal); gives opening and closing balances
    running_balance: Column | None = None
    #: the amount must equal the sum of these two columns (gross + fee)
    sum_of: tuple[Column, Column] | None = None
    #: a text column some rows of this export leave out (they have one field fewer)
    optional: str | None = None
    meta: tuple[tuple[Column, str], ...] = ()
    #: preamble rows before the header: (label pattern, field); fields: account, iban, name,
    #: holder, balance (the label pattern's group 1 is the balance date)
    preamble: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    iban: str | None = None
    number: str | None = None
    account_type: AccountType = AccountType.CURRENT
    header_row: bool = True
    skip_rows: int = 0
    encoding: str | None = None


_BOOKED = TransactionStatus.BOOKED
_PENDING = TransactionStatus.PENDING

PROFILES: tuple[Profile, ...] = (
    Profile(
        id="dkb",
        columns=("Buchungsdatum", "Wertstellung", "Status", "Zahlungspflichtige*r",
                 "Zahlungsempfänger*in", "Verwendungszweck", "Betrag (€)"),
        date="Buchungsdatum",
        date_format="%d.%m.%y",
        value_date="Wertstellung",
        amount="Betrag (€)",
        fixed_currency="EUR",
        description=("Verwendungszweck",),
        merchant="Zahlungspflichtige*r",
        merchant_debit="Zahlungsempfänger*in",
        counterparty_account="IBAN",
        status="Status",
        statuses=(("Gebucht", _BOOKED), ("Vorgemerkt", _PENDING)),
        meta=(("Umsatztyp", "kind"), ("IBAN", "counterparty_iban"),
              ("Gläubiger-ID", "creditor_id"), ("Mandatsreferenz", "mandate_reference"),
              ("Kundenreferenz", "customer_reference")),
        preamble=((r"Kontostand vom (\d\d\.\d\d\.\d{4}):?", "balance"), (r".*", "account")),
    ),
    Profile(
        id="ing",
        columns=("Buchung", "Wertstellungsdatum", "Auftraggeber/Empfänger", "Buchungstext",
                 "Verwendungszweck", "Betrag", "Währung"),
        date="Buchung",
        value_date="Wertstellungsdatum",
        amount="Betrag",
        currency="Währung",
        description=("Verwendungszweck",),
        merchant="Auftraggeber/Empfänger",
        optional="Buchungstext",
        meta=(("Buchungstext", "booking_text"),),
        preamble=((r"IBAN", "iban"), (r"Kontoname", "name"), (r"Kunde", "holder")),
    ),
    Profile(
        id="sparkasse",
        columns=("Auftragskonto", "Buchungstag", "Valutadatum", "Buchungstext",
                 "Verwendungszweck", "Beguenstigter/Zahlungspflichtiger", "Betrag", "Waehrung",
                 "Info"),
        date="Buchungstag",
        date_format="%d.%m.%y",
        value_date="Valutadatum",
        amount="Betrag",
        currency="Waehrung",
        description=("Verwendungszweck",),
        merchant="Beguenstigter/Zahlungspflichtiger",
        counterparty_account="Kontonummer/IBAN",
        account="Auftragskonto",
        status="Info",
        statuses=(("Umsatz gebucht", _BOOKED), ("Umsatz vorgemerkt", _PENDING)),
        meta=(("Buchungstext", "booking_text"), ("Kontonummer/IBAN", "counterparty_iban"),
              ("BIC (SWIFT-Code)", "counterparty_bic"), ("Glaeubiger ID", "creditor_id"),
              ("Mandatsreferenz", "mandate_reference"),
              ("Kundenreferenz (End-to-End)", "end_to_end_reference")),
    ),
    Profile(
        id="paypal",
        columns=("Datum", "Uhrzeit", "Zeitzone", "Name", "Typ", "Status", "Währung", "Brutto",
                 "Gebühr", "Netto", "Transaktionscode", "Guthaben", "Auswirkung auf Guthaben"),
        delimiter=",",
        date="Datum",
        amount="Netto",
        sum_of=("Brutto", "Gebühr"),
        currency="Währung",
        description=("Typ", "Artikelbezeichnung", "Betreff"),
        merchant="Name",
        bank_id="Transaktionscode",
        status="Auswirkung auf Guthaben",
        statuses=(("Soll", _BOOKED), ("Haben", _BOOKED), ("Memo", _PENDING)),
        running_balance="Guthaben",
        meta=(("Uhrzeit", "time"), ("Zeitzone", "timezone"), ("Status", "paypal_status"),
              ("Zugehöriger Transaktionscode", "related_id"),
              ("Rechnungsnummer", "invoice_number")),
        name="PayPal",
        account_type=AccountType.OTHER,
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CsvMapping:
    """A column mapping for a CSV export no profile knows.

    Columns are header names, or 0-based positions when ``header_row`` is False. Give either
    ``amount_column`` (signed) or ``debit_column``/``credit_column`` (outflows/inflows, signed
    or not), and either ``currency`` or ``currency_column``. ``date_format`` uses ``%d %m %Y
    %y``. ``skip_lines`` rows come before the header (or the first data row).
    """

    date_column: Column
    amount_column: Column | None = None
    debit_column: Column | None = None
    credit_column: Column | None = None
    description_columns: tuple[Column, ...] = ()
    currency: str | None = None
    currency_column: Column | None = None
    id_column: Column | None = None
    value_date_column: Column | None = None
    merchant_column: Column | None = None
    counterparty_account_column: Column | None = None
    account_number: str | None = None
    iban: str | None = None
    account_name: str | None = None
    date_format: str = "%d.%m.%Y"
    delimiter: str = ";"
    encoding: str | None = None
    skip_lines: int = 0
    header_row: bool = True
    decimal_separator: str = ","
    thousands_separator: str = "."

    def to_profile(self) -> Profile:
        if (self.amount_column is None) == (
            self.debit_column is None and self.credit_column is None
        ):
            raise StatementError("the mapping needs an amount column or debit/credit columns")
        if (self.currency is None) == (self.currency_column is None):
            raise StatementError("the mapping needs either a fixed currency or a currency column")
        if len(self.delimiter) != 1:
            raise StatementError(f"the mapping's delimiter {self.delimiter!r} is not one character")
        if self.decimal_separator == self.thousands_separator:
            raise StatementError("the decimal and thousands separators must differ")
        return Profile(
            id="generic",
            columns=(),
            date=self.date_column,
            description=self.description_columns,
            amount=self.amount_column,
            debit=self.debit_column,
            credit=self.credit_column,
            delimiter=self.delimiter,
            date_format=self.date_format,
            decimal=self.decimal_separator,
            thousands=self.thousands_separator,
            currency=self.currency_column,
            fixed_currency=self.currency.upper() if self.currency else None,
            value_date=self.value_date_column,
            merchant=self.merchant_column,
            counterparty_account=self.counterparty_account_column,
            bank_id=self.id_column,
            name=self.account_name,
            iban=self.iban,
            number=self.account_number,
            header_row=self.header_row,
            skip_rows=self.skip_lines,
            encoding=self.encoding,
        )


# --- entry points -------------------------------------------------------------------------------


def sniff(data: bytes) -> bool:
    try:
        return _find_profile(_decode(data[:65536], None, partial=True)) is not None
    except StatementError:
        return False


def parse(data: bytes) -> ParsedStatement:
    text = _decode(data, None)
    found = _find_profile(text)
    if found is None:
        names = ", ".join(p.id for p in PROFILES)
        raise StatementError(
            f"the CSV header matches no known bank export ({names}); "
            "read it with a column mapping instead",
            format="csv",
        )
    profile, header_index = found
    return _read(text, profile, header_index, f"csv:{profile.id}")


def parse_with_mapping(data: bytes, mapping: CsvMapping) -> ParsedStatement:
    profile = mapping.to_profile()
    text = _decode(data, profile.encoding)
    return _read(text, profile, profile.skip_rows if profile.header_row else None, "csv:generic")


# --- decoding and layout ------------------------------------------------------------------------


def _decode(data: bytes, encoding: str | None, *, partial: bool = False) -> str:
    if encoding is not None:
        try:
            return data.decode(codecs.lookup(encoding).name)
        except LookupError:
            raise StatementError(f"unknown encoding {encoding!r}", format="csv") from None
        except UnicodeDecodeError as exc:
            raise _encoding_error(data, exc, encoding) from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace" if partial else "strict")
    elif b"\x00" in data[:4096]:
        raise StatementError(
            "the file contains NUL bytes: it looks like UTF-16 without a byte-order mark; "
            "export it as UTF-8 or Windows-1252",
            format="csv",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if partial and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8")  # a character cut by the sniff window
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _encoding_error(data: bytes, exc: UnicodeDecodeError, encoding: str) -> StatementError:
    line = data[: exc.start].count(b"\n") + 1
    return StatementError(
        f"the file is not {encoding}: byte 0x{data[exc.start]:02X} on line {line} cannot be "
        "decoded (is the mapping's encoding right?)",
        format="csv",
    )


def _cell(value: str) -> str:
    return unicodedata.normalize("NFC", value.replace("\ufeff", "")).strip().strip('"').strip()


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Rows with the line each starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            yield start, [_cell(c) for c in row]
            start = reader.line_num + 1
    except csv.Error as exc:
        raise StatementError(f"line {reader.line_num}: {exc}", format="csv") from None


def _find_profile(text: str) -> tuple[Profile, int] | None:
    for profile in PROFILES:
        for index, (_, row) in enumerate(_rows(text, profile.delimiter)):
            if index >= _HEADER_SEARCH_ROWS:
                break
            if set(profile.columns) <= set(row):
                return profile, index
    return None


# --- reading rows --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Account:
    currency: str
    iban: str | None
    rows: list[tuple[TransactionRecord, Decimal | None]] = field(default_factory=list)


def _read(text: str, profile: Profile, header_index: int | None, fmt: str) -> ParsedStatement:
    rows = list(_rows(text, profile.delimiter))
    first = header_index + 1 if header_index is not None else profile.skip_rows
    if header_index is not None:
        if header_index >= len(rows):
            raise StatementError(
                f"the file has no header row at line {header_index + 1}", format=fmt
            )
        header = rows[header_index][1]
    else:
        header = [str(i) for i in range(max((len(r) for _, r in rows[first:]), default=0))]
    preamble = _preamble(rows[: header_index or 0], profile, fmt)
    index = _Columns(header, profile, fmt, rows[header_index][0] if header_index is not None else 0)
    accounts: dict[tuple[str | None, str], _Account] = {}
    for line, row in rows[first:]:
        if not any(row):
            continue
        cells = index.fit(row, line)
        record, balance, iban = _record(cells, index, profile, line, fmt)
        ident = iban or preamble.iban or profile.iban
        account = accounts.get((ident, record.currency))
        if account is None:
            account = accounts[(ident, record.currency)] = _Account(record.currency, ident)
        account.rows.append((record, balance))
    if not accounts:
        raise StatementError("the file has a header but no transactions", format=fmt)
    return ParsedStatement(
        format=fmt,
        accounts=tuple(_statement(a, profile, preamble, len(accounts)) for a in accounts.values()),
    )


class _Columns:
    """Resolves a profile's column names against the header row."""

    def __init__(self, header: list[str], profile: Profile, fmt: str, line: int) -> None:
        self.header = header
        self.fmt = fmt
        self.line = line
        self.optional = header.index(profile.optional) if profile.optional in header else None

    def at(self, column: Column | None) -> int | None:
        if column is None:
            return None
        if isinstance(column, int):
            if not 0 <= column < len(self.header):
                raise StatementError(
                    f"column {column} is outside the file's {len(self.header)} columns",
                    format=self.fmt,
                )
            return column
        if column not in self.header:
            raise StatementError(
                f"the header on line {self.line} has no column {column!r} "
                f"(it has {', '.join(repr(h) for h in self.header)})",
                format=self.fmt,
            )
        return self.header.index(column)

    def fit(self, row: list[str], line: int) -> list[str]:
        width = len(self.header)
        if len(row) > width and not any(row[width:]):
            return row[:width]
        if len(row) == width - 1 and self.optional is not None:
            return [*row[: self.optional], "", *row[self.optional :]]
        if len(row) != width:
            raise StatementError(
                f"line {line} has {len(row)} fields but the header has {width}", format=self.fmt
            )
        return row


def _record(
    cells: list[str], cols: _Columns, p: Profile, line: int, fmt: str
) -> tuple[TransactionRecord, Decimal | None, str | None]:
    def get(column: Column | None) -> str:
        at = cols.at(column)
        return cells[at] if at is not None else ""

    def amount(column: Column) -> Decimal:
        return _amount(get(column), p, line, _label(column), fmt)

    if p.amount is not None:
        value = amount(p.amount)
    else:
        debit = amount(p.debit) if p.debit is not None and get(p.debit) else None
        credit = amount(p.credit) if p.credit is not None and get(p.credit) else None
        if debit and credit:
            raise StatementError(f"line {line} has both a debit and a credit amount", format=fmt)
        if debit is None and credit is None:
            raise StatementError(f"line {line} has no amount", format=fmt)
        value = -abs(debit) if debit else abs(credit or Decimal(0))
    meta = {key: get(column) for column, key in p.meta if get(column)}
    if not _IBAN.fullmatch(meta.get("counterparty_iban", "").replace(" ", "")):
        meta.pop("counterparty_iban", None)  # an IBAN column may hold a card or account number
    if p.sum_of is not None:
        gross, fee = (amount(c) for c in p.sum_of)
        meta["gross"], meta["fee"] = str(gross), str(fee)
        if gross + fee != value:
            raise StatementError(
                f"line {line}: {_label(p.amount)} {get(p.amount)!r} is not "
                f"{_label(p.sum_of[0])} {get(p.sum_of[0])!r} plus {_label(p.sum_of[1])} "
                f"{get(p.sum_of[1])!r}",
                format=fmt,
            )
    currency = p.fixed_currency or _currency(get(p.currency), line, fmt)
    status = _BOOKED
    if p.status is not None:
        raw = get(p.status)
        known = dict(p.statuses)
        if raw not in known:
            raise StatementError(
                f"line {line}: {_label(p.status)} {raw!r} is not one of {', '.join(known)}",
                format=fmt,
            )
        status = known[raw]
    merchant = get(p.merchant_debit) if p.merchant_debit is not None and value < 0 else ""
    merchant = merchant or get(p.merchant)
    parts: list[str] = []
    for column in p.description:
        text = " ".join(get(column).split())
        if text and text not in parts:
            parts.append(text)
    value_date = get(p.value_date)
    balance = get(p.running_balance)
    iban = get(p.account)
    record = TransactionRecord(
        bank_id=get(p.bank_id) or None,
        booking_date=_date(get(p.date), p.date_format, line, _label(p.date), fmt),
        amount=value,
        currency=currency,
        description=" - ".join(parts) or merchant,
        value_date=_date(value_date, p.date_format, line, _label(p.value_date), fmt)
        if value_date
        else None,
        merchant=merchant or None,
        status=status,
        meta=meta or None,
        counterparty_name=merchant or None,
        counterparty_account=get(p.counterparty_account) or None,
    )
    running = _amount(balance, p, line, _label(p.running_balance), fmt) if balance else None
    return record, running, iban.replace(" ", "") or None


def _statement(acc: _Account, p: Profile, preamble: _Preamble, count: int) -> StatementAccount:
    opening: tuple[Decimal, date] | None = None
    closing: tuple[Decimal, date] | None = None
    if preamble.balance is not None and count == 1:
        closing = preamble.balance
    with_balance: list[tuple[TransactionRecord, Decimal]] = [
        (r, b) for r, b in acc.rows if b is not None
    ]
    if with_balance:
        # the running balance of the earliest and latest rows, when the file is in date order
        days = [r.booking_date for r, _ in with_balance]
        ordered = with_balance if days == sorted(days) else None
        if ordered is None and days == sorted(days, reverse=True):
            ordered = with_balance[::-1]
        if ordered is not None:
            first, first_balance = ordered[0]
            last, last_balance = ordered[-1]
            moved = first.amount if first.status == _BOOKED else Decimal(0)
            opening = first_balance - moved, first.booking_date
            closing = last_balance, last.booking_date
    return StatementAccount(
        currency=acc.currency,
        iban=acc.iban,
        number=p.number,
        name=preamble.name or p.name,
        holder_name=preamble.holder,
        type=p.account_type,
        opening_balance=opening[0] if opening else None,
        opening_date=opening[1] if opening else None,
        closing_balance=closing[0] if closing else None,
        closing_date=closing[1] if closing else None,
        transactions=tuple(r for r, _ in acc.rows),
    )


@dataclass(slots=True)
class _Preamble:
    """What the rows above the header say about the account."""

    iban: str | None = None
    name: str | None = None
    holder: str | None = None
    balance: tuple[Decimal, date] | None = None


def _preamble(rows: Sequence[tuple[int, list[str]]], p: Profile, fmt: str) -> _Preamble:
    found = _Preamble()
    for line, row in rows:
        cells = [c for c in row if c]
        if len(cells) < 2:
            continue
        label, value = cells[0], cells[1]
        for pattern, what in p.preamble:
            m = re.fullmatch(pattern, label)
            if m is None:
                continue
            if what == "balance":
                amount = _amount(_strip_currency(value), p, line, label, fmt)
                found.balance = amount, _date(m.group(1), "%d.%m.%Y", line, label, fmt)
            elif what == "account":
                # a row naming the account and giving its IBAN: "Girokonto";"DE42..."
                iban = value.replace(" ", "")
                if _IBAN.fullmatch(iban) and found.iban is None:
                    found.iban, found.name = iban, label
            elif what == "iban":
                found.iban = value.replace(" ", "")
            elif what == "name":
                found.name = value
            elif what == "holder":
                found.holder = value
            break
    return found


# --- values --------------------------------------------------------------------------------------


def _label(column: Column | None) -> str:
    return repr(column) if isinstance(column, str) else f"column {column}"


def _strip_currency(value: str) -> str:
    return re.sub(r"\s*(?:[A-Z]{3}|[€$£])$", "", value.replace("\u00a0", " ").strip())


def _amount(raw: str, p: Profile, line: int, label: str, fmt: str) -> Decimal:
    text = re.sub(r"[\s\u00a0\u202f]", "", raw)
    negative = text.endswith("-") and not text.startswith(("-", "+"))
    text = text[:-1] if negative else text
    dec, thou = re.escape(p.decimal), re.escape(p.thousands) if p.thousands else None
    grouped = rf"\d{{1,3}}(?:{thou}\d{{3}})+" if thou else r"(?!)"
    pattern = rf"([+-]?)((?:{grouped}|\d+)(?:{dec}\d*)?|{dec}\d+)"
    m = re.fullmatch(pattern, text)
    if m is None:
        raise StatementError(f"line {line}: {label} {raw!r} is not an amount", format=fmt)
    digits = m.group(2).replace(p.thousands, "") if p.thousands else m.group(2)
    value = Decimal(digits.replace(p.decimal, "."))
    return -value if negative or m.group(1) == "-" else value


def _date(raw: str, pattern: str, line: int, label: str, fmt: str) -> date:
    regex = ""
    for piece in re.split(r"(%[dmYy])", pattern):
        regex += {
            "%d": r"(?P<d>\d{1,2})",
            "%m": r"(?P<m>\d{1,2})",
            "%Y": r"(?P<Y>\d{4})",
            "%y": r"(?P<y>\d{2})",
        }.get(piece, re.escape(piece))
    m = re.fullmatch(regex, raw.strip())
    try:
        if m is None:
            raise ValueError(raw)
        year = int(m["Y"]) if "Y" in m.groupdict() else 2000 + int(m["y"])
        return date(year, int(m["m"]), int(m["d"]))
    except (ValueError, IndexError):
        raise StatementError(
            f"line {line}: {label} {raw!r} is not a date in the form {pattern}", format=fmt
        ) from None


def _currency(raw: str, line: int, fmt: str) -> str:
    code = _CURRENCY_SIGNS.get(raw, raw.upper())
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise StatementError(f"line {line}: {raw!r} is not a currency code", format=fmt)
    return code


__all__ = ["PROFILES", "CsvMapping", "Profile", "parse", "parse_with_mapping", "sniff"]
