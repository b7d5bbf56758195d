"""SWIFT MT940 account statements and MT942 interim reports: files, and FinTS answers.

This is bankhub's one MT940 reader: the statement importer and the FinTS connector (HIKAZ)
both read with it. It is bankhub's own, not the ``mt-940`` library, because that library
misreads or loses what the corpus holds, in the parts every file goes through (the ``:61:``
grammar and the ``:86:`` text), so it cannot serve even with pre- or post-processing around it.
Measured with mt-940 5.1.1 and every fix it offers switched on
(``mt940.parse_statements(data, options=mt940.Options.all())``):

* ``ASNB/mt940.txt``: its ``:61:`` customer reference has 18 characters; the library's grammar
  stops at 16, so the whole file raises "Unable to parse", and the first booking given alone
  reads customer reference ``NL47INGB99999999`` with ``99`` as supplementary details.
* The FinTS dummy bank's ``:86:`` (python-fints' test server): the purpose reads
  ``...IBAN: DE1100000100000001234: GENODE11``: the library drops the `` BIC`` before ``?24``.
* ``betterplace/sepa_snippet.sta``: five structured purposes without ``SVWZ+`` (``KREF+...``,
  ``EREF+...MTLG:...``) read as no purpose at all.
* ``jejik/postfinance.sta``: a line hard-wrapped at 65 characters is joined with a line break
  (``XXXXXXXXSTR`` / ``ASSE``); ``jejik/ing.sta``: soft hyphens stay inside dates, and the
  statement's own ``:86:`` after ``:62F:`` is appended to the last booking's text.
* A value date ``170230`` silently becomes 28 February instead of being refused, and errors name
  no line.

Readings (see docs/statements-camt-mt940.md): the booking date is the :61: entry date (else the
value date); ``RC``/``RD`` reverse a credit/debit, so they book as a debit/credit; ``bank_id`` is
the bank reference after ``//`` unless it is missing, ``NONREF`` or only zeros, and is dropped when
the file gives it to two different bookings. :86: is read as German structured (GVC ``?NN``
subfields with SEPA keys) when it starts with three digits and ``?``, else as free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from bankhub.connectors.base import TransactionRecord
from bankhub.statements.camt import StatementPart, merge_parts
from bankhub.statements.model import ParsedStatement, StatementError

_TAG = re.compile(r"^:(\d{2}[A-Z]?|NS):(.*)$")
_END = re.compile(r"^-(\}.*|XXX)?\s*$")
_BLOCK = re.compile(r"\{[1235]:(?:\{[^{}]*\}|[^{}])*\}")
_BALANCE = re.compile(r"^([CD])(\d{6})([A-Z]{3})(\d+,\d*)$")
_FLOOR = re.compile(r"^([A-Z]{3})[CD]?(\d+,?\d*)$")
_LINE61 = re.compile(r"^(\d{6})(\d{4}|\s{4})?(RC|RD|C|D)([A-Z])?(.*)$")
_AMOUNT = re.compile(r"^(\d+),(\d*)")
_TYPE = re.compile(r"^[NSF][A-Z0-9 ]{3}")
_IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$")
_STRUCTURED = re.compile(r"^(\d{3})\?\d{2}")
_SUBFIELD = re.compile(r"\?(\d{2})")
_SEPA_KEYS = re.compile(r"(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|PURP|COAM|OAMT|IBAN|BIC)\+")
_SEPA_META = {"EREF": "end_to_end_id", "MREF": "mandate_id", "CRED": "creditor_id"}
_SNIFF_FIELDS = re.compile(r"(?m)^:(?:60[FM]|61|62[FM]|34F|28C?):")
#: SWIFT lines are at most 65 characters; a full line continues on the next without a space
_LINE_WIDTH = 65
#: the first and last day a statement covers
Period = tuple[date, date]


def sniff(data: bytes) -> bool:
    """True when the file's fields look like an MT940/MT942 message (:20:, :25:, balances...)."""
    text = "\n".join(line for _, line in _lines(_without_junk(_decode(data[:65536]))))
    return (
        re.search(r"(?m)^:20:", text) is not None
        and re.search(r"(?m)^:25:", text) is not None
        and _SNIFF_FIELDS.search(text) is not None
    )


def parse(data: bytes) -> ParsedStatement:
    """Every statement of the file, merged per account+currency in date order."""
    return parse_text(_decode(data))


def parse_text(text: str, *, currency: str | None = None) -> ParsedStatement:
    """:func:`parse` for text already decoded (a FinTS answer is ISO 8859-1 by definition);
    ``currency`` is the account's, for a statement that states none (no balance, no :34F:)."""
    messages = _messages(_without_junk(text))
    if not messages:
        raise StatementError(
            "no MT940/MT942 statement found (no :20: or :25: field)", format="mt940"
        )
    interim = [_is_mt942(m) for m in messages]
    fmt = "mt942" if all(interim) else "mt940"
    parts = [_Message(m, fmt, currency).part() for m in messages]
    return ParsedStatement(format=fmt, accounts=merge_parts(parts))


# --- text and fields -----------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    """UTF-8 (replacement characters kept as they are), else Windows-1252, else ISO-8859-1."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = data.decode("latin-1")
    return text


def _without_junk(text: str) -> str:
    """Without soft hyphens (ING writes them into dates) and transfer control characters."""
    for junk in ("\u00ad", "\x01", "\x03"):
        text = text.replace(junk, "")
    return text.replace("\t", " ")


def _lines(text: str) -> list[tuple[int, str]]:
    """Numbered lines with the SWIFT block wrapping ({1:..}{2:..}{4: ... -}{5:..}) removed."""
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _BLOCK.sub("", raw)
        if "{4:" in line:
            line = line.split("{4:", 1)[1]
            if not line.strip():
                continue
        out.append((number, line.rstrip("\r")))
    return out


@dataclass(slots=True)
class _Field:
    tag: str
    line: int
    lines: list[str]

    @property
    def value(self) -> str:
        return self.lines[0].strip()

    def joined(self) -> str:
        """Lines joined: directly after a full 65-character line (a hard wrap), else by a space."""
        text, full = "", False
        for index, line in enumerate(self.lines):
            width = len(line.rstrip()) + (len(self.tag) + 2 if index == 0 else 0)
            if not line.strip():
                full = False
                continue
            if not text:
                text = line.strip()
            elif full:
                text += line.rstrip()
            else:
                text += " " + line.strip()
            full = width >= _LINE_WIDTH
        return text


@dataclass(slots=True)
class _Raw:
    line: int
    fields: list[_Field] = field(default_factory=list)


def _messages(text: str) -> list[_Raw]:
    messages: list[_Raw] = []
    current: _Raw | None = None
    for number, line in _lines(text):
        tag = _TAG.match(line)
        if tag is not None:
            if current is None or tag.group(1) == "20":
                current = _Raw(number)
                messages.append(current)
            current.fields.append(_Field(tag.group(1), number, [tag.group(2)]))
        elif _END.match(line):
            current = None
        elif current is not None and current.fields:
            current.fields[-1].lines.append(line)
    return messages


def _is_mt942(message: _Raw) -> bool:
    tags = {f.tag for f in message.fields}
    return not tags & {"60F", "60M"} and bool(tags & {"34F", "13D", "13", "90D", "90C"})


# --- one message ---------------------------------------------------------------------------------


class _Message:
    def __init__(self, raw: _Raw, fmt: str, currency: str | None = None) -> None:
        self.raw, self.fmt, self.default_currency = raw, fmt, currency
        ref = next((f.value for f in raw.fields if f.tag == "20"), None)
        self.where = f"statement at line {raw.line}" + (f" (:20:{ref})" if ref else "")

    def error(self, line: int, message: str) -> StatementError:
        return StatementError(f"line {line}: {message}", format=self.fmt)

    def part(self) -> StatementPart:
        account = next((f for f in self.raw.fields if f.tag == "25"), None)
        if account is None or not account.value:
            raise StatementError(
                f"the {self.where} has no :25: account identification", format=self.fmt
            )
        iban, number, bank_code = _account(account.value)
        part = StatementPart(currency="", iban=iban, number=number, bank_code=bank_code)
        closing: tuple[Decimal, date] | None = None
        currency: str | None = None
        transactions: list[tuple[_Field, list[_Field]]] = []
        after_61 = False
        for fld in self.raw.fields:
            if fld.tag in ("60F", "60M", "62F", "62M", "64"):
                amount, day, ccy = self.balance(fld)
                currency = currency or ccy
                if fld.tag.startswith("60") and part.opening is None:
                    part.opening = (amount, day)
                elif fld.tag.startswith("62"):
                    closing = (amount, day)
                elif fld.tag == "64":
                    part.available = amount
            elif fld.tag == "34F" and currency is None:
                floor = _FLOOR.match(fld.value)
                if floor is None:
                    raise self.error(fld.line, f":34F: floor limit {fld.value!r} is not CCY+amount")
                currency = floor.group(1)
            if fld.tag == "61":
                transactions.append((fld, []))
                after_61 = True
            elif fld.tag in ("86", "NS") and after_61:
                transactions[-1][1].append(fld)
                after_61 = fld.tag == "NS"
            else:
                after_61 = False
        currency = currency or self.default_currency
        if currency is None:
            raise StatementError(
                f"the {self.where} states no currency (no :60F:/:62F: balance or :34F:)",
                format=self.fmt,
            )
        part.currency, part.closing = currency, closing
        period = self.period(part.opening, closing)
        part.transactions = [
            self.transaction(f, info, currency, period) for f, info in transactions
        ]
        return part

    def period(
        self, opening: tuple[Decimal, date] | None, closing: tuple[Decimal, date] | None
    ) -> Period | None:
        """The days the statement covers, from its own dates: the opening and closing balances'
        (:60F:/:62F:) and an interim report's :13D: date-time. None when it states none."""
        days = [b[1] for b in (opening, closing) if b is not None]
        for fld in self.raw.fields:
            if fld.tag in ("13D", "13"):
                days.append(self.date(fld.value[:6], fld))
        return (min(days), max(days)) if days else None

    def balance(self, fld: _Field) -> tuple[Decimal, date, str]:
        found = _BALANCE.match(fld.value)
        if found is None:
            raise self.error(
                fld.line,
                f":{fld.tag}: balance {fld.value!r} is not C/D + YYMMDD + currency + amount",
            )
        mark, day, ccy, amount = found.groups()
        value = _decimal(amount)
        return (-value if mark == "D" else value), self.date(day, fld), ccy

    def date(self, text: str, fld: _Field) -> date:
        try:
            year = int(text[:2])
            return date(2000 + year if year < 80 else 1900 + year, int(text[2:4]), int(text[4:6]))
        except ValueError as exc:
            raise self.error(fld.line, f":{fld.tag}: {text!r} is not a valid YYMMDD date") from exc

    def transaction(
        self, fld: _Field, info: list[_Field], currency: str, period: Period | None
    ) -> TransactionRecord:
        found = _LINE61.match(fld.value)
        if found is None:
            raise self.error(
                fld.line, f":61: {fld.value!r} does not start with YYMMDD[MMDD] and C/D/RC/RD"
            )
        value_text, entry_text, mark, funds, rest = found.groups()
        amount_match = _AMOUNT.match(rest)
        if amount_match is None:
            raise self.error(
                fld.line, f":61: amount {rest[:15]!r} is not a number with a decimal comma"
            )
        amount = _decimal(amount_match.group(0))
        rest = rest[amount_match.end() :]
        kind = _TYPE.match(rest)
        if kind is None:
            raise self.error(fld.line, f":61: {rest[:8]!r} is not a transaction type like NTRF")
        rest = rest[4:]
        customer, _, bank = rest.partition("//")
        value_day = self.date(value_text, fld)
        booking = _entry_date(
            value_day,
            entry_text,
            period,
            lambda: self.error(fld.line, (f":61: entry date {entry_text!r} is not a valid MMDD")),
        )
        debit = mark in ("D", "RC")
        meta: dict[str, Any] = {"transaction_type": kind.group(0).strip()}
        if funds:
            meta["funds_code"] = funds
        if mark.startswith("R"):
            meta["reversal"] = True
        if customer.strip() and customer.strip().upper() != "NONREF":
            meta["customer_reference"] = customer.strip()
        bank_id = _bank_reference(bank)
        if bank.strip():
            meta["bank_reference"] = bank.strip()
        supplementary = " ".join(line.strip() for line in fld.lines[1:] if line.strip())
        if supplementary:
            meta["supplementary_details"] = supplementary
        description, merchant, party = "", None, _Party()
        for extra in info:
            if extra.tag == "NS":
                meta["ns"] = [line.strip() for line in extra.lines if line.strip()]
            else:
                description, merchant, party = _information(extra, meta)
        description = (
            description or supplementary or " ".join(meta.get("ns", [])) or meta["transaction_type"]
        )
        return TransactionRecord(
            bank_id=bank_id,
            booking_date=booking,
            amount=-amount if debit else amount,
            currency=currency,
            description=description,
            value_date=value_day,
            merchant=merchant,
            meta=meta,
            counterparty_name=party.name,
            counterparty_account=party.account,
        )


def _decimal(text: str) -> Decimal:
    whole, _, fraction = text.partition(",")
    return Decimal(f"{whole}.{fraction}" if fraction else whole)


def _entry_date(value_day: date, text: str | None, period: Period | None, error: Any) -> date:
    """The year of an MMDD entry date, which the field leaves out.

    A statement's bookings fall within its own period (:60F: to :62F:, or an interim report's
    :13D:), give or take the days a bank takes to post; the value date may lie months away (a
    back-valued correction, a forward-valued deposit), so it only breaks ties. The entry date
    takes the year that puts it inside the period, else nearest to it; a statement that states
    no date at all leaves the value date to decide.
    """
    if text is None or not text.strip():
        return value_day
    start, end = period or (value_day, value_day)
    if (end - start).days < 365:
        # A period shorter than a year holds at most one such date: when it does, that is it.
        for year in {start.year, end.year}:
            try:
                day = date(year, int(text[:2]), int(text[2:]))
            except ValueError:
                continue
            if start <= day <= end:
                return day
    candidates = []
    for year in range(min(start.year, value_day.year) - 1, max(end.year, value_day.year) + 2):
        try:
            candidates.append(date(year, int(text[:2]), int(text[2:])))
        except ValueError:
            continue
    if not candidates:
        raise error()

    def outside(day: date) -> int:
        return max((start - day).days, (day - end).days, 0)

    return min(candidates, key=lambda day: (outside(day), abs((day - value_day).days)))


def _bank_reference(text: str) -> str | None:
    ref = text.strip()
    if not ref or ref.upper() == "NONREF" or not ref.strip("0"):
        return None
    return ref


def _account(value: str) -> tuple[str | None, str | None, str | None]:
    """:25: as IBAN, BLZ/account (bank code + number), BIC/account or a plain number."""
    tokens = value.split()
    if len(tokens) > 1 and re.fullmatch(r"[A-Z]{3}", tokens[-1]):
        tokens = tokens[:-1]  # a trailing currency code
    text = "".join(tokens)
    bank_code = None
    if "/" in text:
        left, right = text.split("/", 1)
        if left and right:
            bank_code, text = left, right
    compact = text.upper()
    if _IBAN.match(compact):
        return compact, None, bank_code
    return None, text, bank_code


def _information(fld: _Field, meta: dict[str, Any]) -> tuple[str, str | None, _Party]:
    """Description, merchant and counterparty from :86:, filling ``meta`` with what it finds."""
    raw = "".join(fld.lines).strip()
    structured = _STRUCTURED.match(raw)
    if structured is None:
        text = fld.joined()
        return text, None, _free_text_party(text, fld.lines)
    meta["gvc"] = structured.group(1)
    pieces = _SUBFIELD.split(raw[3:])
    subfields: dict[int, str] = {}
    for code, piece in zip(pieces[1::2], pieces[2::2], strict=True):
        subfields[int(code)] = subfields.get(int(code), "") + piece
    named = {0: "posting_text", 10: "prima_nota", 30: "counterparty_bank_code", 34: "text_key_ext"}
    for code, key in named.items():
        if subfields.get(code, "").strip():
            meta[key] = subfields[code].strip()
    account = subfields.get(31, "").strip()
    if _IBAN.match(account):
        meta["counterparty_iban"] = account
    purpose = "".join(subfields.get(c, "") for c in (*range(20, 30), *range(60, 64)))
    sepa = _sepa(purpose)
    if sepa:
        meta["sepa"] = sepa
        meta.update({_SEPA_META[k]: v for k, v in sepa.items() if k in _SEPA_META})
    others = {
        str(c): t.strip()
        for c, t in subfields.items()
        if c not in named
        and c not in (31, 32, 33)
        and not 20 <= c <= 29
        and not 60 <= c <= 63
        and t.strip()
    }
    if others:
        meta["subfields"] = others
    name = " ".join((subfields.get(32, "") + subfields.get(33, "")).split()) or None
    description = sepa.get("SVWZ") or " ".join(purpose.split()) or meta.get("posting_text", "")
    # ?32+?33 the name, ?31 the account (IBAN or account number)
    return description, name, _Party(name, "".join(account.split()) or None)


@dataclass(frozen=True, slots=True)
class _Party:
    """The other party of a booking as its :86: names it."""

    name: str | None = None
    account: str | None = None


# Free-text :86: forms banks use to name the other party, in the order they are tried.
#: the Dutch banks' keyed form: /NAME/, /IBAN/, ING's /CNTP/account/BIC/name/city/
_KEYED_NAME = re.compile(r"/NAME/([^/]+)")
_KEYED_IBAN = re.compile(r"/IBAN/([^/]+)")
_KEYED_CNTP = re.compile(r"/CNTP/([^/]*)/([^/]*)/([^/]*)")
#: Polish banks (mBank): "Z RACH.:"/"NA RACH.:" the account, "OD:"/"DO:" the name on its line
_POLISH_ACCOUNT = re.compile(r"\b(?:Z|NA) RACH\.:\s*([A-Z]{0,2}[\d ]{10,40})")
_POLISH_NAME = re.compile(r"(?:^|;)\s*(?:OD|DO):\s*([^;]+)")
#: German and Swiss banks (PostFinance): "AUFTRAGGEBER:" (payer), "BEGÜNSTIGTER:" (payee) and
#: the like, followed by name and address up to the next label
_GERMAN_LABEL = re.compile(
    r"\b(?:AUFTRAGGEBER|BEGUENSTIGTER|BEGÜNSTIGTER|ZAHLUNGSEMPFAENGER|ZAHLUNGSEMPFÄNGER"
    r"|EMPFAENGER|EMPFÄNGER)\s*:\s*(.*?)(?=\s[A-ZÄÖÜ]{4,}\s*:|$)",
    re.IGNORECASE,
)
_STREET = re.compile(r"(?i)(?:strasse|straße|str\.?|weg|gasse|platz|allee|ring)$")
#: Dutch banks without keys (ASN, old ING): the account, then the name, on the first line
_LEADING_ACCOUNT = re.compile(r"^([A-Z]{2}\d{2}[A-Z0-9]{10,30}|\d{9,10})(?:\s+(\S.*))?$")


def _free_text_party(text: str, lines: list[str]) -> _Party:
    """The other party of a free-text :86: (``text`` its joined lines), in the forms above;
    cheap substring tests come first, because most texts are in none of them."""
    if text.startswith("/"):
        cntp = _KEYED_CNTP.search(text)
        keyed_name = _KEYED_NAME.search(text)
        keyed_iban = _KEYED_IBAN.search(text)
        return _Party(
            _clean(keyed_name.group(1) if keyed_name else cntp.group(3) if cntp else None),
            _clean(
                keyed_iban.group(1) if keyed_iban else cntp.group(1) if cntp else None,
                compact=True,
            ),
        )
    polish = _POLISH_ACCOUNT.search(text) if "RACH." in text else None
    if polish is not None:
        # A name line ends where the bank wrapped it; the address follows on the next line.
        named = (_POLISH_NAME.search(line) for line in lines if ":" in line)
        polish_name = next((m.group(1) for m in named if m is not None), None)
        return _Party(_clean(polish_name), _clean(polish.group(1), compact=True))
    german = _GERMAN_LABEL.search(text) if ":" in text else None
    if german is not None:
        return _Party(_name_before_address(german.group(1)))
    first = next((line.strip() for line in lines if line.strip()), "")
    leading = _LEADING_ACCOUNT.match(first) if first[:1].isalnum() else None
    if leading is not None:
        # On a line of its own, the rest of the first line is the name; on a single line it
        # cannot be told from the purpose.
        more = sum(1 for line in lines if line.strip()) > 1
        return _Party(_clean(leading.group(2) if more else None), leading.group(1))
    return _Party()


def _name_before_address(text: str) -> str | None:
    """ "JANE DOE EXAMPLESTRASSE 10 1234 CITY": the words before the street and its number."""
    words: list[str] = []
    for word in text.split():
        if any(ch.isdigit() for ch in word):
            if len(words) > 1 and _STREET.search(words[-1]):
                words.pop()
            break
        words.append(word)
    return _clean(" ".join(words))


def _clean(text: str | None, *, compact: bool = False) -> str | None:
    if text is None:
        return None
    cleaned = "".join(text.split()) if compact else " ".join(text.split())
    return cleaned or None


def _sepa(purpose: str) -> dict[str, str]:
    """SEPA keys (EREF+, MREF+, CRED+, SVWZ+, ABWA+...) of the joined purpose text."""
    pieces = _SEPA_KEYS.split(purpose)
    found: dict[str, str] = {}
    for key, text in zip(pieces[1::2], pieces[2::2], strict=True):
        value = " ".join(text.split())
        if value and key not in found:
            found[key] = value
    return found
