"""Bank CSV and spreadsheet exports, recognised by their header row, and any other table
through a column mapping.

Each known layout is a profile file in ``statements/profiles/`` (``PROFILES``); adding a bank is
adding a file. A file whose header matches no profile is not claimed (:func:`explain` names the
closest profile and the cells it lacks); it can still be read with :func:`parse_with_mapping`
and a :class:`CsvMapping`.

Readings: a two-digit year ``yy`` is 20yy; a booking date is the date as written; ``%b`` is an
English month abbreviation. Spreadsheet cells typed as numbers or dates are rendered in the
profile's decimal mark and date format before they are read like a CSV file's cells.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from functools import partial
from itertools import islice

from bankhub.connectors.base import TransactionRecord, TransactionStatus
from bankhub.statements import xlsx
from bankhub.statements.model import ParsedStatement, StatementAccount, StatementError
from bankhub.statements.profiles import Column, Profile, load_all

#: how far down a file the header row may be (after a preamble)
_HEADER_SEARCH_ROWS = 40
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}")
_CURRENCY_SIGNS = {"€": "EUR", "$": "USD", "£": "GBP", "₫": "VND"}
#: %b in a date format: English month abbreviations, whatever the machine's locale
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


_BOOKED = TransactionStatus.BOOKED
_PENDING = TransactionStatus.PENDING

#: every layout in ``statements/profiles/``, in file-name order
PROFILES: tuple[Profile, ...] = load_all()


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
        sheet = _Sheet(data if xlsx.is_xlsx(data) else data[:65536], None, partial=True)
        return _find_profile(sheet) is not None
    except StatementError:
        return False


def parse(data: bytes) -> ParsedStatement:
    sheet = _Sheet(data, None)
    found = _find_profile(sheet)
    if found is None:
        raise StatementError(
            _no_profile(sheet), format="xlsx" if sheet.xlsx else "csv", problem="unknown_format"
        )
    profile, header_index = found
    return _read(sheet, profile, header_index, f"{profile.file}:{profile.id}")


def parse_with_mapping(data: bytes, mapping: CsvMapping) -> ParsedStatement:
    profile = mapping.to_profile()
    sheet = _Sheet(data, profile.encoding)
    if sheet.xlsx:
        profile = replace(profile, file="xlsx")
    header_index = profile.skip_rows if profile.header_row else None
    return _read(sheet, profile, header_index, f"{profile.file}:generic")


@dataclass(frozen=True, slots=True)
class TableLayout:
    """Where a table's header seems to be, for a user to map its columns: the delimiter, the
    number of rows above the header, and the header's cells."""

    delimiter: str
    skip_lines: int
    columns: tuple[str, ...]


def table_layout(data: bytes) -> TableLayout | None:
    """The header of a CSV or spreadsheet file no profile knows: of the first rows, the first
    that has the most named cells (three at least), with the delimiter that gives it. None
    when nothing in the file looks like a header."""
    try:
        sheet = _Sheet(data[:65536] if not xlsx.is_xlsx(data) else data, None, partial=True)
    except StatementError:
        return None
    best: TableLayout | None = None
    for delimiter in _DELIMITERS[:1] if sheet.xlsx else _DELIMITERS:
        for index, (_, row) in enumerate(sheet.head(delimiter)):
            cells = tuple(c for c in row if c)
            # a header names its columns: no cell of it is a number
            if len(cells) < 3 or len(set(cells)) != len(cells) or len(cells) != len(row):
                continue
            if any(re.fullmatch(r"[\d\s.,+\-/:]+", c) for c in cells):
                continue
            if best is None or len(cells) > len(best.columns):
                best = TableLayout(delimiter, index, cells)
            break
    return best


def explain(data: bytes) -> str | None:
    """Why no profile claims a file that looks like a table: the closest profile and the header
    cells it misses. None when the file does not look like a CSV or spreadsheet at all."""
    try:
        sheet = _Sheet(data[:65536] if not xlsx.is_xlsx(data) else data, None, partial=True)
        if not sheet.xlsx and not any(
            len(row) > 2 for d in _DELIMITERS for _, row in sheet.head(d)
        ):
            return None
        return _no_profile(sheet)
    except StatementError:
        return None


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


_DELIMITERS = (";", ",", "\t", "|")
Rows = list[tuple[int, list[str]]]


class _Sheet:
    """A file's rows: a CSV file's, split by each delimiter asked for (once), or the first
    worksheet's, rendered as text for the profile that reads them."""

    def __init__(self, data: bytes, encoding: str | None, *, partial: bool = False) -> None:
        self.xlsx = xlsx.is_xlsx(data)
        self._cells = xlsx.read_rows(data) if self.xlsx else []
        self._text = "" if self.xlsx else _decode(data, encoding, partial=partial)
        self._heads: dict[str, Rows] = {}

    def head(self, delimiter: str) -> Rows:
        """The first rows, where a header may be (a preamble comes before it)."""
        found = self._heads.get(delimiter)
        if found is None:
            if self.xlsx:
                found = self.rows(replace(_HEADER_TEXT, delimiter=delimiter))
                found = found[:_HEADER_SEARCH_ROWS]
            else:
                found = list(islice(_rows(self._text, delimiter), _HEADER_SEARCH_ROWS))
            self._heads[delimiter] = found
        return found

    def rows(self, profile: Profile) -> Rows:
        if not self.xlsx:
            return list(_rows(self._text, profile.delimiter))
        render = partial(xlsx.text, decimal=profile.decimal, date_format=profile.date_format)
        out: Rows = []
        for number, cells in self._cells:
            texts = [_cell(render(c)) for c in cells]
            while texts and not texts[-1]:
                texts.pop()  # a sheet's rows are as wide as its widest; a CSV row ends at its data
            out.append((number, texts))
        return out


#: how header rows of a spreadsheet are rendered for matching (header cells are text)
_HEADER_TEXT = Profile(id="header", columns=(), date=0, description=(), decimal=".", thousands=",")


def _candidates(sheet: _Sheet) -> tuple[Profile, ...]:
    return tuple(p for p in PROFILES if (p.file == "xlsx") == sheet.xlsx)


def _find_profile(sheet: _Sheet) -> tuple[Profile, int | None] | None:
    """The profile whose header cells are all in one of the first rows; of several, the one
    that names the most cells (a layout that extends another is the more specific). A layout
    without a header row is tried only when no header matched."""
    best: tuple[Profile, int | None] | None = None
    for profile in _candidates(sheet):
        if not profile.columns:
            continue
        for index, (_, row) in enumerate(sheet.head(profile.delimiter)):
            if set(profile.columns) <= set(row):
                if best is None or len(profile.columns) > len(best[0].columns):
                    best = profile, index
                break
    if best is not None:
        return best
    for profile in _candidates(sheet):
        if profile.row_match and _row_matches(sheet, profile):
            return profile, None
    return None


def _row_matches(sheet: _Sheet, profile: Profile) -> bool:
    rows = [row for _, row in sheet.head(profile.delimiter)[profile.skip_rows :] if any(row)]
    if not rows:
        return False
    return all(
        len(row) == len(profile.row_match)
        and all(re.fullmatch(p, cell) for p, cell in zip(profile.row_match, row, strict=True))
        for row in rows[:-1] or rows  # the last row of a sniffed window may be cut short
    )


def _no_profile(sheet: _Sheet) -> str:
    """The error for a table no profile claims, naming the closest profile."""
    kind = "spreadsheet" if sheet.xlsx else "CSV"
    closest: tuple[float, Profile, list[str]] | None = None
    for profile in _candidates(sheet):
        wanted = set(profile.columns)
        if not wanted:
            continue
        for _, row in sheet.head(profile.delimiter):
            share = len(wanted & set(row)) / len(wanted)
            if share > 0 and (closest is None or share > closest[0]):
                missing = [c for c in profile.columns if c not in row]
                closest = share, profile, missing
    advice = "import it with a column mapping instead"
    if closest is None:
        return f"the {kind} header matches no known bank export; {advice}"
    _, profile, missing = closest
    found = len(profile.columns) - len(missing)
    return (
        f"the {kind} header matches no known bank export; the closest is {profile.id!r} "
        f"({profile.bank}: {found} of {len(profile.columns)} header cells, missing "
        f"{', '.join(repr(c) for c in missing)}); {advice}"
    )


# --- reading rows --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Account:
    currency: str
    iban: str | None
    rows: list[tuple[TransactionRecord, Decimal | None]] = field(default_factory=list)


def _read(sheet: _Sheet, profile: Profile, header_index: int | None, fmt: str) -> ParsedStatement:
    rows = sheet.rows(profile)
    first = header_index + 1 if header_index is not None else profile.skip_rows
    if header_index is not None:
        if header_index >= len(rows):
            raise StatementError(
                f"the file has no header row at line {header_index + 1}", format=fmt
            )
        header = rows[header_index][1]
        while header and not header[-1]:
            # Lloyds ends its header row with a comma and its data rows without one
            header = header[:-1]
    else:
        header = [str(i) for i in range(max((len(r) for _, r in rows[first:]), default=0))]
    preamble = _preamble(rows[: header_index or 0], profile, fmt)
    skipped: Rows = []
    index = _Columns(header, profile, fmt, rows[header_index][0] if header_index is not None else 0)
    accounts: dict[tuple[str | None, str], _Account] = {}
    for line, row in rows[first:]:
        if not any(row):
            continue
        if profile.footer is not None and re.fullmatch(profile.footer, row[0]):
            skipped.append((line, row))  # it may be the closing balance (Postbank's Kontostand)
            break
        cells = index.fit(row, line)
        read = _record(cells, index, profile, line, fmt)
        if read is None:
            skipped.append((line, row))
            continue
        record, balance, iban = read
        ident = iban or preamble.iban or profile.iban
        account = accounts.get((ident, record.currency))
        if account is None:
            account = accounts[(ident, record.currency)] = _Account(record.currency, ident)
        account.rows.append((record, balance))
    if not accounts:
        raise StatementError(
            "the file has a header but no transactions", format=fmt, problem="no_transactions"
        )
    if skipped and any(what == "closing" for _, what in profile.preamble):
        preamble = _preamble(skipped, profile, fmt, preamble)
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
) -> tuple[TransactionRecord, Decimal | None, str | None] | None:
    """One row's transaction, its running balance and account; None for a row that is not a
    transaction (``skip_without_amount``)."""

    def get(column: Column | None) -> str:
        at = cols.at(column)
        return cells[at] if at is not None else ""

    def amount(column: Column) -> Decimal:
        return _amount(get(column), p, line, _label(column), fmt)

    if p.skip_without_amount and not any(get(c) for c in (p.amount, p.debit, p.credit) if c):
        return None
    if p.amount is not None:
        value = amount(p.amount)
        if p.indicator is not None:
            value = _indicated(abs(value), get(p.indicator), p, line, fmt)
    else:
        debit = amount(p.debit) if p.debit is not None and get(p.debit) else None
        credit = amount(p.credit) if p.credit is not None and get(p.credit) else None
        if debit and credit:
            raise StatementError(f"line {line} has both a debit and a credit amount", format=fmt)
        if debit is None and credit is None:
            raise StatementError(f"line {line} has no amount", format=fmt)
        value = -abs(debit) if debit else abs(credit or Decimal(0))
    if p.negate:
        value = -value
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


def _preamble(
    rows: Sequence[tuple[int, list[str]]], p: Profile, fmt: str, found: _Preamble | None = None
) -> _Preamble:
    """What labelled rows above the header (or, for ``closing``, below the data) say."""
    found = found or _Preamble()
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
            elif what == "closing" and len(cells) >= 3:
                # "Kontostand";"31.03.2025";"4.949,29";"EUR": the label, the day, the balance
                day = _date(value, p.date_format, line, label, fmt)
                found.balance = _amount(_strip_currency(cells[2]), p, line, label, fmt), day
            elif what == "account":
                # a row naming the account and giving its IBAN: "Girokonto";"DE42..." (DKB), or
                # "Giro direkt";"123 4567890 00";"DE89...";"EUR" (Postbank)
                ibans = [c.replace(" ", "") for c in cells[1:]]
                iban = next((i for i in ibans if _IBAN.fullmatch(i)), None)
                if iban is not None and found.iban is None:
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


def _indicated(value: Decimal, raw: str, p: Profile, line: int, fmt: str) -> Decimal:
    """An unsigned amount signed by the layout's debit/credit indicator column."""
    if raw in p.debit_values:
        return -value
    if raw in p.credit_values:
        return value
    known = ", ".join(repr(v) for v in (*p.debit_values, *p.credit_values))
    raise StatementError(
        f"line {line}: {_label(p.indicator)} {raw!r} is not one of {known}", format=fmt
    )


def _strip_currency(value: str) -> str:
    return re.sub(r"\s*(?:[A-Z]{3}|[€$£])$", "", value.replace("\u00a0", " ").strip())


def _amount(raw: str, p: Profile, line: int, label: str, fmt: str) -> Decimal:
    # a currency sign or code next to the number (Nationwide's "£12.50", "1.234,56 €")
    text = re.sub(r"[\s\u00a0\u202f]", "", raw)
    text = re.sub(r"^([+-]?)(?:[€$£₫]|[A-Z]{3})|(?:[€$£₫]|[A-Z]{3})$", r"\1", text)
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
    for piece in re.split(r"(%[dmYyb])", pattern):
        regex += {
            "%d": r"(?P<d>\d{1,2})",
            "%m": r"(?P<m>\d{1,2})",
            "%Y": r"(?P<Y>\d{4})",
            "%y": r"(?P<y>\d{2})",
            "%b": r"(?P<b>[A-Za-z]{3})",
        }.get(piece, re.escape(piece))
    m = re.fullmatch(regex, raw.strip())
    try:
        if m is None:
            raise ValueError(raw)
        year = int(m["Y"]) if "Y" in m.groupdict() else 2000 + int(m["y"])
        month = _MONTHS.index(m["b"].lower()) + 1 if "b" in m.groupdict() else int(m["m"])
        return date(year, month, int(m["d"]))
    except (ValueError, IndexError):
        raise StatementError(
            f"line {line}: {label} {raw!r} is not a date in the form {pattern}", format=fmt
        ) from None


def _currency(raw: str, line: int, fmt: str) -> str:
    code = _CURRENCY_SIGNS.get(raw, raw.upper())
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise StatementError(f"line {line}: {raw!r} is not a currency code", format=fmt)
    return code


__all__ = [
    "PROFILES",
    "CsvMapping",
    "Profile",
    "TableLayout",
    "explain",
    "parse",
    "parse_with_mapping",
    "sniff",
    "table_layout",
]
