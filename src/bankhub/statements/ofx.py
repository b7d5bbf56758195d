"""OFX/QFX statements (OFX 1.x SGML and OFX 2.x XML): files, and OFX Direct Connect answers.

This is bankhub's one OFX reader: the statement importer and the OFX Direct Connect connector
both read statements with it. The markup is tokenized by ofxtools' parser
(``ofxtools.Parser.TreeBuilder``, SGML and XML alike) into an element tree; bankhub reads the
tree. Around the library:

* **Before it** (decoding): the text is decoded as the header declares it (``CHARSET``/
  ``ENCODING``, or the XML declaration), tolerating what banks write: blank lines before the
  header (``ofx-v102-empty-tags.ofx``, which ofxtools' header reader refuses), an XML header
  over an SGML body (``anzcc.ofx``), stray 8-bit bytes in a 1252 file. A file that declares
  UTF-8 and is not is refused, naming the byte and line.
* **Inside it** (:class:`_Builder`, the library's tokenizer with start and end hooked): the end
  tags SGML files leave out are put back (an empty ``<NAME>`` with no text is a leaf, not an
  aggregate; ``</STMTTRN>`` missing before the next ``<STMTTRN>``, ``</BANKTRANLIST>`` before
  the balances), an end tag that closes nothing open is refused, and a truncated file is named
  as such. ofxtools' own tree builder pops whatever element is open on any end tag.
* **After it**: bankhub reads the tree, not ofxtools' models (``OFXTree.convert``), because the
  models refuse readable statements: ``checking.ofx`` (a BANKID of 10 digits: "exceeds max
  length=9"), ``br_nubank_cc.ofx`` (no LEDGERBAL: "Value is required") and
  ``ofx-v102-empty-tags.ofx`` (empty elements), and they turn dates into UTC instants, which
  moves a booking date written with an offset to another day. Measured with
  ``python -c 'from ofxtools.Parser import OFXTree; t = OFXTree(); t.parse(FILE); t.convert()'``
  (ofxtools 1.1.1).

Readings of the points the specification leaves open or banks get wrong:

* A booking date is the calendar date written in DTPOSTED, in the bank's local time; the offset
  (``[-3:GMT]``) is not used to move it to another day. The instant, converted to UTC, is kept in
  ``meta["posted_at"]`` when the file gives a time of day.
* An empty CURDEF takes the one currency the statement's transactions name (CURRENCY or
  ORIGCURRENCY CURSYM); with none or several, the statement is refused.
* Amounts accept a comma as the decimal separator (``-200,00``).
* Any STATUS with a non-zero CODE refuses a statement file, quoting the bank's code and message;
  the connector maps the same statuses (:attr:`OfxDocument.statuses`) to its failures.
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree.ElementTree import Element  # the node type only: ofxtools parses  # nosec B405

from ofxtools import models
from ofxtools.models.base import Aggregate
from ofxtools.Parser import ParseError, TreeBuilder

from bankhub.connectors.base import AccountType, TransactionRecord, TransactionStatus
from bankhub.statements.model import ParsedStatement, StatementAccount, StatementError

FORMAT = "ofx"


#: an aggregate that opens while another is still open ends it: SGML files that forget
#: ``</BANKTRANLIST>`` before the balances (``br_nubank_cc.ofx``, which ofxtools' tree builder
#: reads with LEDGERBAL inside the transaction list), or ``</STMTTRN>`` before the next one
_IMPLIED_END = {
    "STMTTRN": frozenset({"STMTTRN"}),
    "LEDGERBAL": frozenset({"BANKTRANLIST", "STMTTRN"}),
    "AVAILBAL": frozenset({"BANKTRANLIST", "STMTTRN", "LEDGERBAL"}),
    "BALLIST": frozenset({"BANKTRANLIST", "STMTTRN", "LEDGERBAL", "AVAILBAL"}),
}

_ACCOUNT_TYPES = {
    "CHECKING": AccountType.CURRENT,
    "SAVINGS": AccountType.SAVINGS,
    "MONEYMRKT": AccountType.SAVINGS,
    "CD": AccountType.SAVINGS,
    "CREDITLINE": AccountType.LOAN,
}

_ENTITY = re.compile(r"&(amp|lt|gt|quot|apos|#\d+|#x[0-9A-Fa-f]+);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_DATE = re.compile(
    r"(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})"
    r"(?:(?P<h>\d{2})(?P<mi>\d{2})(?P<s>\d{2})?)?"
    r"(?:[.:]\d{1,6})?"
    r"\s*(?:\[\s*(?P<off>[+-]?\d{1,2}(?:\.\d{1,2})?)\s*(?::\s*[A-Za-z]*\s*)?\])?"
)
_AMOUNT = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")
_XML_ENCODING = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", re.I)
#: a tag as ofxtools' tokenizer matches it; the start tags among them make the elements, in order
_TAG = re.compile(r"<([A-Z0-9./_ ]+?)>")
#: where ofxtools' tokenizer says an error is
_POSITION = re.compile(r" - position=\[(\d+):\d+\]$")
#: stands for the line number in a message raised inside the tokenizer, which knows no lines
_AT_LINE = "\x00"


@dataclass(frozen=True, slots=True)
class Node:
    """One element of the library's tree, with the line it starts on."""

    element: Element
    lines: Mapping[int, int]

    @property
    def name(self) -> str:
        return str(self.element.tag)

    @property
    def line(self) -> int:
        return self.lines.get(id(self.element), 0)

    def child(self, name: str) -> Node | None:
        found = next((c for c in self.element if c.tag == name), None)
        return Node(found, self.lines) if found is not None else None

    def value(self, name: str) -> str:
        """The stripped text of a direct child leaf; empty when absent or empty."""
        found = next((c for c in self.element if c.tag == name), None)
        return (found.text or "").strip() if found is not None else ""

    def walk(self, name: str) -> list[Node]:
        """Every element of that name below this one, in document order."""
        return [Node(e, self.lines) for e in self.element.iter(name) if e is not self.element]


@dataclass(frozen=True, slots=True)
class Status:
    """One STATUS aggregate of the file, and the response it belongs to (``SONRS``,
    ``STMTTRNRS``, ``CCSTMTTRNRS``...)."""

    response: str
    code: str
    severity: str
    message: str
    line: int

    @property
    def ok(self) -> bool:
        return bool(self.code) and self.code.strip("0") == ""


@dataclass(frozen=True, slots=True)
class OfxDocument:
    """A read OFX file or answer: its statuses in document order, and its statements."""

    root: Node
    statuses: tuple[Status, ...]

    def statements(self) -> tuple[StatementAccount, ...]:
        """Every bank (STMTRS) and credit-card (CCSTMTRS) statement, in file order."""
        found = self.root.walk("STMTRS") + self.root.walk("CCSTMTRS")
        if not found:
            if self.root.walk("INVSTMTRS"):
                raise StatementError("the OFX file holds only investment statements", format=FORMAT)
            raise StatementError(
                "the OFX file holds no bank or credit-card statement", format=FORMAT
            )
        found.sort(key=lambda n: n.line)
        return tuple(_account(s) for s in found)


def sniff(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    if head.startswith((b"OFXHEADER", b"<OFX>")):
        return True
    return head.startswith(b"<?XML") and (b"<?OFX" in head or b"<OFX>" in head)


def read(data: bytes) -> OfxDocument:
    """The file's element tree and statuses; a file that cannot be read raises StatementError."""
    root = _tree(_decode(data))
    statuses = []
    for parent in root.element.iter():
        for child in parent:
            if child.tag == "STATUS":
                status = Node(child, root.lines)
                statuses.append(
                    Status(
                        response=str(parent.tag),
                        code=status.value("CODE"),
                        severity=status.value("SEVERITY"),
                        message=status.value("MESSAGE"),
                        line=status.line,
                    )
                )
    statuses.sort(key=lambda s: s.line)
    return OfxDocument(root, tuple(statuses))


def parse(data: bytes) -> ParsedStatement:
    document = read(data)
    for status in document.statuses:
        if not status.ok:
            raise StatementError(
                f"the bank reported an error in the OFX file: code {status.code or '(none)'} "
                f"({status.severity or '?'}): {status.message or 'no message'}",
                format=FORMAT,
            )
    return ParsedStatement(format=FORMAT, accounts=document.statements())


# --- decoding ------------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[3:], "utf-8", "a UTF-8 byte-order mark")
    head = data[:2048].lstrip()
    if head[:5].lower() == b"<?xml":
        match = _XML_ENCODING.search(head)
        declared = match.group(1).decode("ascii") if match else "utf-8"
        return _with_codec(data, declared, f'encoding="{declared}"')
    headers = _sgml_headers(data)
    if headers.get("ENCODING", "").upper() in {"UTF-8", "UTF8", "UNICODE"}:
        return _strict(data, "utf-8", f"ENCODING:{headers['ENCODING']}")
    charset = headers.get("CHARSET", "1252").upper()
    codec = {"ISO-8859-1": "latin-1", "8859-1": "latin-1"}.get(charset, "cp1252")
    return _with_codec(data, codec, f"CHARSET:{charset}")


def _sgml_headers(data: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in data[: data.find(b"<")].splitlines():
        key, sep, value = raw.decode("ascii", "replace").partition(":")
        if sep:
            headers[key.strip().upper()] = value.strip()
    return headers


def _with_codec(data: bytes, name: str, declared: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise StatementError(
            f"the OFX header declares an unknown {declared}", format=FORMAT
        ) from None
    if codec in {"ascii", "cp1252", "latin-1", "iso8859-1"}:
        # US-ASCII and 1252 files often carry stray 8-bit bytes; Windows-1252 covers them
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return _strict(data, codec, declared)


def _strict(data: bytes, codec: str, declared: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StatementError(
            f"the OFX file declares {declared} but byte 0x{data[exc.start]:02X} on line {line} "
            f"is not {codec}",
            format=FORMAT,
        ) from None


# --- tokenizing ----------------------------------------------------------------------------------


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref.startswith("#x"):
            return chr(int(ref[2:], 16))
        if ref.startswith("#"):
            return chr(int(ref[1:]))
        return _ENTITIES[ref]

    return _ENTITY.sub(one, text)


def _is_leaf(tag: str) -> bool:
    """Whether an element is a value, not an aggregate: ofxtools models every aggregate of the
    specification; anything else (a value, a bank's private tag) holds no other elements."""
    model = getattr(models, tag, None)
    return not (isinstance(model, type) and issubclass(model, Aggregate))


class _Builder(TreeBuilder):
    """ofxtools' tokenizer, with the end tags SGML leaves out put back.

    The library calls ``start`` for every start tag and ``end`` for every end tag (and right
    after the text of a leaf); it decides that an element with no text is an aggregate, and its
    base tree builder pops whatever is open on any end tag. Here an open element that is a
    leaf (an SGML value left empty) ends when the next tag comes, an aggregate that cannot
    hold the one starting ends before it (:data:`_IMPLIED_END`), an end tag ends the elements
    still open inside its own, and an end tag for an element that is not open is refused.
    """

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def start(self, tag: str, attrs: dict[str, str], /) -> Element:
        implied = _IMPLIED_END.get(tag, frozenset())
        while self.open and (_is_leaf(self.open[-1]) or self.open[-1] in implied):
            self._pop()
        self.open.append(tag)
        return super().start(tag, attrs)

    def data(self, data: str, /) -> None:
        super().data(_unescape(data))

    def end(self, tag: str, /) -> Element:
        if tag not in self.open:
            raise ParseError(f"the OFX file closes <{tag}> on line {_AT_LINE} but it is not open")
        while self.open[-1] != tag:
            self._pop()
        return self._pop()

    def _pop(self) -> Element:
        return super().end(self.open.pop())

    def finish(self) -> Element:
        while self.open and _is_leaf(self.open[-1]):
            self._pop()
        if self.open:
            missing = ", ".join(f"</{name}>" for name in reversed(self.open))
            raise StatementError(
                f"the OFX file is truncated: it ends before {missing}", format=FORMAT
            )
        return super().close()


def _tree(text: str) -> Node:
    start = text.upper().find("<OFX>")
    if start < 0:
        raise StatementError("the file has an OFX header but no <OFX> element", format=FORMAT)
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def line_at(position: int) -> int:
        return bisect.bisect_right(newlines, start + position) + 1

    body = text[start:]
    cut = body.rfind("<")
    if ">" not in body[cut:]:
        raise StatementError(
            f"the OFX file is truncated: it ends inside a tag on line {line_at(cut)}",
            format=FORMAT,
        )
    builder = _Builder()
    try:
        builder.feed(body)
    except ParseError as exc:
        message = str(exc)
        where = _POSITION.search(message)
        line = line_at(int(where.group(1))) if where else 0
        if message.startswith("Tail text"):
            message = f"the OFX file has stray text on line {line}"
        else:
            message = _POSITION.sub("", message).replace(_AT_LINE, str(line))
        raise StatementError(message, format=FORMAT) from None
    root = builder.finish()
    if root.tag != "OFX":
        raise StatementError("the OFX file has no <OFX> element", format=FORMAT)
    starts = (m.start() for m in _TAG.finditer(body) if not m.group(1).startswith("/"))
    lines = {id(element): line_at(at) for element, at in zip(root.iter(), starts, strict=False)}
    return Node(root, lines)


# --- reading the tree ----------------------------------------------------------------------------


def _account(stmt: Node) -> StatementAccount:
    credit_card = stmt.name == "CCSTMTRS"
    acct = stmt.child("CCACCTFROM" if credit_card else "BANKACCTFROM")
    if acct is None:
        raise StatementError(
            f"the statement on line {stmt.line} has no account (BANKACCTFROM/CCACCTFROM)",
            format=FORMAT,
        )
    number = acct.value("ACCTID")
    if not number:
        raise StatementError(f"the account on line {acct.line} has no ACCTID", format=FORMAT)
    currency = _currency(stmt, number)
    if credit_card:
        kind = AccountType.CREDIT_CARD
    else:
        raw_type = acct.value("ACCTTYPE").upper()
        kind = _ACCOUNT_TYPES.get(raw_type, AccountType.OTHER) if raw_type else AccountType.CURRENT
    ledger = _balance(stmt.child("LEDGERBAL"))
    available = _balance(stmt.child("AVAILBAL"))
    tranlist = stmt.child("BANKTRANLIST")
    rows = tranlist.walk("STMTTRN") if tranlist is not None else []
    return StatementAccount(
        currency=currency,
        number=number,
        bank_code=acct.value("BANKID") or None,
        type=kind,
        closing_balance=ledger[0],
        closing_date=ledger[1],
        available_balance=available[0],
        transactions=tuple(_transaction(row, currency) for row in rows),
    )


def _currency(stmt: Node, number: str) -> str:
    curdef = stmt.value("CURDEF").upper()
    if curdef:
        return _check_currency(curdef, stmt)
    named = {
        n.value("CURSYM").upper()
        for kind in ("CURRENCY", "ORIGCURRENCY")
        for n in stmt.walk(kind)
        if n.value("CURSYM")
    }
    if len(named) == 1:
        return _check_currency(named.pop(), stmt)
    raise StatementError(
        f"the statement for account {number} (line {stmt.line}) has an empty CURDEF and its "
        "transactions do not name one currency, so its currency is unknown",
        format=FORMAT,
    )


def _check_currency(code: str, node: Node) -> str:
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise StatementError(
            f"the currency {code!r} near line {node.line} is not an ISO 4217 code", format=FORMAT
        )
    return code


def _balance(node: Node | None) -> tuple[Decimal | None, date | None]:
    if node is None or not node.value("BALAMT"):
        return None, None
    amount = _amount(node, "BALAMT")
    when = _date(node, "DTASOF")[0] if node.value("DTASOF") else None
    return amount, when


def _transaction(row: Node, currency: str) -> TransactionRecord:
    booking, posted_at = _date(row, "DTPOSTED")
    amount = _amount(row, "TRNAMT")
    payee = row.child("PAYEE")
    name = row.value("NAME") or (payee.value("NAME") if payee is not None else "")
    memo = " ".join(row.value("MEMO").split())
    name = " ".join(name.split())
    if name and memo and name not in memo:
        description = f"{name} - {memo}"
    else:
        description = memo or name or row.value("TRNTYPE").lower()
    meta: dict[str, Any] = {}
    if row.value("TRNTYPE"):
        meta["trntype"] = row.value("TRNTYPE").upper()
    # SIC: the payee's Standard Industrial Classification, which card issuers fill with the
    # merchant category code; the categorizer reads it
    for tag, key in (("CHECKNUM", "checknum"), ("REFNUM", "refnum"), ("SIC", "sic")):
        if row.value(tag):
            meta[key] = row.value(tag)
    for tag, key in (("DTAVAIL", "dtavail"), ("DTUSER", "dtuser")):
        if row.value(tag):
            meta[key] = _date(row, tag)[0].isoformat()
    if posted_at is not None:
        meta["posted_at"] = posted_at.isoformat()
    tx_currency = currency
    for kind in ("CURRENCY", "ORIGCURRENCY"):
        other = row.child(kind)
        if other is not None and other.value("CURSYM"):
            sym = _check_currency(other.value("CURSYM").upper(), other)
            if sym != currency:
                meta["original_currency" if kind == "ORIGCURRENCY" else "currency"] = sym
                if other.value("CURRATE"):
                    meta["currate"] = str(_amount(other, "CURRATE"))
                if kind == "CURRENCY":
                    tx_currency = sym
    value_date = _date(row, "VALUEDATE")[0] if row.value("VALUEDATE") else None
    # The account the money went to or came from, when the bank names it (a transfer).
    other = row.child("BANKACCTTO") or row.child("CCACCTTO")
    return TransactionRecord(
        bank_id=row.value("FITID") or None,
        booking_date=booking,
        amount=amount,
        currency=tx_currency,
        description=description,
        value_date=value_date,
        merchant=name or None,
        status=TransactionStatus.BOOKED,
        meta=meta or None,
        counterparty_name=name or None,
        counterparty_account=(other.value("ACCTID") or None) if other is not None else None,
    )


def _amount(node: Node, tag: str) -> Decimal:
    raw = node.value(tag)
    where = f"{tag} on line {(node.child(tag) or node).line}"
    if not raw:
        raise StatementError(f"{where} is missing or empty", format=FORMAT)
    text = raw.replace(" ", "")
    if "," in text and "." in text:
        # thousands grouping: the separator that comes last is the decimal one
        thousands = "," if text.rfind(",") < text.rfind(".") else "."
        head, _, tail = text.rpartition("," if thousands == "." else ".")
        if not re.fullmatch(rf"[+-]?\d{{1,3}}({re.escape(thousands)}\d{{3}})*", head):
            raise StatementError(f"{where} has {raw!r}, which is not an amount", format=FORMAT)
        text = head.replace(thousands, "") + "." + tail
    if not _AMOUNT.fullmatch(text):
        raise StatementError(f"{where} has {raw!r}, which is not an amount", format=FORMAT)
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise StatementError(
            f"{where} has {raw!r}, which is not an amount", format=FORMAT
        ) from None


def _date(node: Node, tag: str) -> tuple[date, datetime | None]:
    """The date as written, and the UTC instant when the value has a time of day."""
    raw = node.value(tag)
    where = f"{tag} on line {(node.child(tag) or node).line}"
    if not raw:
        raise StatementError(f"{where} is missing or empty", format=FORMAT)
    m = _DATE.fullmatch(raw)
    if m is None:
        raise StatementError(f"{where} has {raw!r}, which is not an OFX date", format=FORMAT)
    try:
        day = date(int(m["y"]), int(m["mo"]), int(m["d"]))
        if m["h"] is None:
            return day, None
        offset = timedelta(minutes=int(Decimal(m["off"]) * 60)) if m["off"] else timedelta(0)
        local = datetime(
            day.year,
            day.month,
            day.day,
            int(m["h"]),
            int(m["mi"]),
            int(m["s"] or 0),
            tzinfo=timezone(offset),
        )
    except ValueError:
        raise StatementError(
            f"{where} has {raw!r}, which is not a valid date", format=FORMAT
        ) from None
    return day, local.astimezone(UTC)
