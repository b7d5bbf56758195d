"""OFX/QFX statements: OFX 1.x SGML (unclosed tags) and OFX 2.x XML, read by one tolerant tokenizer.

Readings of the points the specification leaves open or banks get wrong:

* A booking date is the calendar date written in DTPOSTED, in the bank's local time; the offset
  (``[-3:GMT]``) is not used to move it to another day. The instant, converted to UTC, is kept in
  ``meta["posted_at"]`` when the file gives a time of day.
* An empty CURDEF takes the one currency the statement's transactions name (CURRENCY or
  ORIGCURRENCY CURSYM); with none or several, the statement is refused.
* Amounts accept a comma as the decimal separator (``-200,00``).
* Any STATUS with a non-zero CODE refuses the file, quoting the bank's code and message.
"""

from __future__ import annotations

import bisect
import codecs
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from bankhub.connectors.base import AccountType, TransactionRecord, TransactionStatus
from bankhub.statements.model import ParsedStatement, StatementAccount, StatementError

FORMAT = "ofx"

#: elements that never hold other elements, so an empty one is not mistaken for an aggregate
_LEAVES = frozenset(
    {
        "ACCTBAL",
        "ACCTID",
        "ACCTKEY",
        "ACCTTYPE",
        "BALAMT",
        "BANKID",
        "BRANCHID",
        "CATEGORY",
        "CHECKNUM",
        "CODE",
        "CORRECTACTION",
        "CORRECTFITID",
        "CURDEF",
        "CURRATE",
        "CURSYM",
        "DTACCTUP",
        "DTASOF",
        "DTAVAIL",
        "DTEND",
        "DTPOSTED",
        "DTPROFUP",
        "DTSERVER",
        "DTSTART",
        "DTUSER",
        "FID",
        "FITID",
        "INTU.BID",
        "INTU.USERID",
        "LANGUAGE",
        "MEMO",
        "MESSAGE",
        "NAME",
        "ORG",
        "PAYEEID",
        "REFNUM",
        "SEVERITY",
        "SIC",
        "SRVRTID",
        "TRANSACTIONSPLIT",
        "TRNAMT",
        "TRNTYPE",
        "TRNUID",
        "VALUEDATE",
    }
)

#: an aggregate that opens while another is still open ends it (SGML files that forget
#: ``</BANKTRANLIST>`` before the balances, or ``</STMTTRN>`` before the next transaction)
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

_TOKEN = re.compile(
    r"<!\[CDATA\[(?P<cdata>.*?)\]\]>"
    r"|<!--.*?-->"
    r"|<\?.*?\?>"
    r"|<(?P<close>/?)(?P<tag>[A-Za-z][A-Za-z0-9_.]*)\s*>"
    r"|(?P<text>[^<]+)"
    r"|(?P<bad><)",
    re.DOTALL,
)
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


@dataclass(slots=True)
class Node:
    """One OFX element: a leaf with ``text`` or an aggregate with ``children``."""

    name: str
    line: int
    text: str | None = None
    children: list[Node] = field(default_factory=list)

    def child(self, name: str) -> Node | None:
        return next((c for c in self.children if c.name == name), None)

    def value(self, name: str) -> str:
        """The stripped text of a direct child leaf; empty when absent or empty."""
        node = self.child(name)
        return (node.text or "").strip() if node is not None else ""

    def walk(self, name: str) -> list[Node]:
        found: list[Node] = []
        for c in self.children:
            if c.name == name:
                found.append(c)
            found.extend(c.walk(name))
        return found


def sniff(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    if head.startswith((b"OFXHEADER", b"<OFX>")):
        return True
    return head.startswith(b"<?XML") and (b"<?OFX" in head or b"<OFX>" in head)


def parse(data: bytes) -> ParsedStatement:
    text = _decode(data)
    root = _tree(text)
    _check_status(root)
    statements = root.walk("STMTRS") + root.walk("CCSTMTRS")
    if not statements:
        if root.walk("INVSTMTRS"):
            raise StatementError("the OFX file holds only investment statements", format=FORMAT)
        raise StatementError("the OFX file holds no bank or credit-card statement", format=FORMAT)
    statements.sort(key=lambda n: n.line)
    return ParsedStatement(format=FORMAT, accounts=tuple(_account(s) for s in statements))


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


def _tree(text: str) -> Node:
    start = text.upper().find("<OFX>")
    if start < 0:
        raise StatementError("the file has an OFX header but no <OFX> element", format=FORMAT)
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    root = Node("#root", 0)
    stack = [root]
    for m in _TOKEN.finditer(text, start):
        line = bisect.bisect_right(newlines, m.start()) + 1
        if m.group("bad") is not None:
            if ">" not in text[m.start() :]:
                raise StatementError(
                    f"the OFX file is truncated: it ends inside a tag on line {line}",
                    format=FORMAT,
                )
            raise StatementError(f"the OFX file has a broken tag on line {line}", format=FORMAT)
        if m.group("text") is not None or m.group("cdata") is not None:
            cdata = m.group("cdata")
            chunk = cdata if cdata is not None else _unescape(m.group("text"))
            top = stack[-1]
            if top.children or top is root:
                if chunk.strip():
                    raise StatementError(
                        f"the OFX file has stray text {chunk.strip()[:30]!r} on line {line}",
                        format=FORMAT,
                    )
                continue
            if chunk.strip() or top.text is not None:
                top.text = (top.text or "") + chunk
            continue
        name = m.group("tag").upper()
        if not m.group("close"):
            _close_leaf(stack)
            while len(stack) > 1 and stack[-1].name in _IMPLIED_END.get(name, ()):
                stack.pop()
            node = Node(name, line)
            stack[-1].children.append(node)
            stack.append(node)
            continue
        leaf = _close_leaf(stack)
        if leaf is not None and leaf.name == name:
            continue
        if stack[-1].name == name and not stack[-1].children:
            stack.pop()  # an empty element written <X></X>
            stack[-1].children[-1].text = stack[-1].children[-1].text or ""
            continue
        names = [n.name for n in stack]
        if name not in names:
            raise StatementError(
                f"the OFX file closes <{name}> on line {line} but it is not open", format=FORMAT
            )
        while stack[-1].name != name:
            stack.pop()
        stack.pop()
    _close_leaf(stack)
    if len(stack) > 1:
        missing = ", ".join(f"</{n.name}>" for n in reversed(stack[1:]))
        raise StatementError(f"the OFX file is truncated: it ends before {missing}", format=FORMAT)
    ofx = root.child("OFX")
    if ofx is None:
        raise StatementError("the OFX file has no <OFX> element", format=FORMAT)
    return ofx


def _close_leaf(stack: list[Node]) -> Node | None:
    """Pop the open element if it is a leaf (it has text, or its name is a known leaf)."""
    top = stack[-1]
    if len(stack) > 1 and not top.children and (top.text is not None or top.name in _LEAVES):
        stack.pop()
        top.text = top.text or ""
        return top
    return None


# --- reading the tree ----------------------------------------------------------------------------


def _check_status(root: Node) -> None:
    for status in root.walk("STATUS"):
        code = status.value("CODE")
        if code and code.strip("0") == "":
            continue
        message = status.value("MESSAGE") or "no message"
        severity = status.value("SEVERITY") or "?"
        raise StatementError(
            f"the bank reported an error in the OFX file: code {code or '(none)'} "
            f"({severity}): {message}",
            format=FORMAT,
        )


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
    for tag, key in (("CHECKNUM", "checknum"), ("REFNUM", "refnum")):
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
