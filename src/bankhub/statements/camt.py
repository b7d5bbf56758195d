"""ISO 20022 camt.052 (report), camt.053 (statement) and camt.054 (notification), versions 02-08.

Readings (see docs/statements-camt-mt940.md): the entry ``Amt`` is the account movement and
``CdtDbtInd`` its sign, also on reversals (``RvslInd`` goes into meta); ``BOOK`` is booked,
``PDNG``/``FUTR`` pending and ``INFO`` entries are skipped (no booking happened). ``bank_id`` is the
account servicer's reference (``AcctSvcrRef``), which the bank assigns once per booking on the
account; ``NtryRef`` and end-to-end ids are set per statement or by the payer and are kept in meta.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element, ParseError  # nosec B405

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from bankhub.connectors.base import AccountType, TransactionRecord, TransactionStatus
from bankhub.statements.model import ParsedStatement, StatementAccount, StatementError

_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(05[234])\.001\.(\d{2})$")
_VERSIONS = range(2, 9)
#: message type -> (document element, statement element)
_MESSAGES = {
    "052": ("BkToCstmrAcctRpt", "Rpt"),
    "053": ("BkToCstmrStmt", "Stmt"),
    "054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn"),
}
_SNIFF = (b"urn:iso:std:iso:20022:tech:xsd:camt.05", *(m[0].encode() for m in _MESSAGES.values()))
_AMOUNT = re.compile(r"^\d+(\.\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_STATUS = {
    "BOOK": TransactionStatus.BOOKED,
    "PDNG": TransactionStatus.PENDING,
    "FUTR": TransactionStatus.PENDING,
}
_ACCOUNT_TYPES = {
    "CACC": AccountType.CURRENT,
    "SVGS": AccountType.SAVINGS,
    "CARD": AccountType.CREDIT_CARD,
    "LOAN": AccountType.LOAN,
}
_OPENING = ("OPBD", "PRCD")
_CLOSING = ("CLBD",)
_INTERIM = ("ITBD",)
_AVAILABLE = ("CLAV", "ITAV")
#: TxDtls/Refs children kept in meta, by their meta key
_REFS = {
    "MsgId": "message_id",
    "PmtInfId": "payment_info_id",
    "InstrId": "instruction_id",
    "EndToEndId": "end_to_end_id",
    "TxId": "transaction_id",
    "MndtId": "mandate_id",
    "ChqNb": "cheque_number",
    "AcctSvcrRef": "tx_account_servicer_ref",
}
_AMOUNT_DETAILS = {
    "InstdAmt": "instructed",
    "TxAmt": "transaction",
    "CntrValAmt": "counter_value",
    "AnncdPstngAmt": "announced_posting",
}

Balance = tuple[Decimal, date]


def sniff(data: bytes) -> bool:
    """True when the start of the file names a camt namespace or camt document element."""
    head = data[:65536]
    return b"<" in head and any(marker in head for marker in _SNIFF)


def parse(data: bytes) -> ParsedStatement:
    """Read every statement (report, notification) of the file, merged per account+currency."""
    root = _load(data)
    xml = _Xml(root)
    kind, document, item = xml.message
    body = xml.child(root, document)
    if body is None:
        raise StatementError(
            f"the camt.{kind} document has no <{document}> element", format=_f(kind)
        )
    parts: list[StatementPart] = []
    for index, stmt in enumerate(xml.children(body, item), start=1):
        parts.extend(_Statement(xml, stmt, f"{item}[{index}]").parts())
    if not parts:
        raise StatementError(f"<{document}> holds no <{item}> element", format=_f(kind))
    return ParsedStatement(format=_f(kind), accounts=merge_parts(parts))


def _f(kind: str) -> str:
    return f"camt.{kind}"


def _load(data: bytes) -> Element:
    try:
        root: Element = fromstring(data)
    except ParseError as exc:
        raise StatementError(f"the camt XML is not well-formed: {exc}", format="camt") from exc
    except DefusedXmlException as exc:
        raise StatementError(
            f"the camt XML uses a DTD or entities, which are refused ({type(exc).__name__})",
            format="camt",
        ) from exc
    return root


# --- merging statements of the same account (shared with the MT940 parser) ----------------------


@dataclass(slots=True)
class StatementPart:
    """One statement of one account and currency, before statements are merged."""

    currency: str
    iban: str | None = None
    number: str | None = None
    bank_code: str | None = None
    name: str | None = None
    holder_name: str | None = None
    type: AccountType = AccountType.CURRENT
    opening: Balance | None = None
    closing: Balance | None = None
    available: Decimal | None = None
    transactions: list[TransactionRecord] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.iban or self.number or "", self.currency)

    @property
    def sort_date(self) -> date:
        dates = [b[1] for b in (self.opening, self.closing) if b is not None]
        dates += [t.booking_date for t in self.transactions]
        return min(dates, default=date.min)


def merge_parts(parts: Iterable[StatementPart]) -> tuple[StatementAccount, ...]:
    """One account per account+currency: statements in date order (file order on ties), the
    opening balance of the first, the closing balance of the last, transactions in that order."""
    groups: dict[tuple[str, str], list[StatementPart]] = {}
    for part in parts:
        groups.setdefault(part.key, []).append(part)
    accounts = []
    for group in groups.values():
        ordered = sorted(group, key=lambda p: p.sort_date)  # sorted() is stable: file order on ties

        def first(attr: str, ordered: list[StatementPart] = ordered) -> Any:
            return next((getattr(p, attr) for p in ordered if getattr(p, attr)), None)

        opening, closing = ordered[0].opening, ordered[-1].closing
        available = next((p.available for p in reversed(ordered) if p.available is not None), None)
        transactions = _unique_ids([t for p in ordered for t in p.transactions])
        accounts.append(
            StatementAccount(
                currency=ordered[0].currency,
                number=first("number"),
                iban=first("iban"),
                bank_code=first("bank_code"),
                name=first("name"),
                holder_name=first("holder_name"),
                type=ordered[0].type,
                opening_balance=opening[0] if opening else None,
                opening_date=opening[1] if opening else None,
                closing_balance=closing[0] if closing else None,
                closing_date=closing[1] if closing else None,
                available_balance=available,
                transactions=tuple(transactions),
            )
        )
    return tuple(accounts)


def _unique_ids(transactions: list[TransactionRecord]) -> list[TransactionRecord]:
    """A bank id seen twice for the same booking (overlapping statements) keeps the first copy;
    seen for different bookings it is not unique, so those transactions lose it."""
    seen: dict[str, TransactionRecord] = {}
    clashing: set[str] = set()
    kept = []
    for txn in transactions:
        if txn.bank_id is not None and txn.bank_id in seen:
            if seen[txn.bank_id] == txn:
                continue
            clashing.add(txn.bank_id)
        elif txn.bank_id is not None:
            seen[txn.bank_id] = txn
        kept.append(txn)
    return [replace(t, bank_id=None) if t.bank_id in clashing else t for t in kept]


# --- XML access ----------------------------------------------------------------------------------


class _Xml:
    """Namespace-aware lookups in one camt document."""

    def __init__(self, root: Element) -> None:
        match = re.match(r"^\{([^}]*)\}(.*)$", root.tag)
        if match is None:
            raise StatementError(
                f"the XML root <{root.tag}> has no namespace; a camt file names "
                "urn:iso:std:iso:20022:tech:xsd:camt.05x.001.0N",
                format="camt",
            )
        self.ns, local = match.groups()
        found = _NAMESPACE.match(self.ns)
        if found is None:
            raise StatementError(
                f"the XML namespace {self.ns!r} is not a camt.052/053/054 message", format="camt"
            )
        kind, version = found.group(1), int(found.group(2))
        if version not in _VERSIONS:
            raise StatementError(
                f"camt.{kind}.001.{version:02d} is not supported (versions 02 to 08 are)",
                format=_f(kind),
            )
        if local != "Document":
            raise StatementError(
                f"the camt root element is <{local}>, expected <Document>", format=_f(kind)
            )
        self.message = (kind, *_MESSAGES[kind])

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self.ns}}}{step}" for step in path.split("/"))

    def child(self, el: Element, path: str) -> Element | None:
        return el.find(self._path(path))

    def children(self, el: Element, path: str) -> list[Element]:
        return el.findall(self._path(path))

    def text(self, el: Element | None, path: str) -> str | None:
        if el is None:
            return None
        found = el.find(self._path(path))
        if found is None or found.text is None:
            return None
        return " ".join(found.text.split()) or None

    def first(self, el: Element | None, *paths: str) -> str | None:
        return next((t for p in paths if (t := self.text(el, p)) is not None), None)

    def texts(self, el: Element, path: str) -> list[str]:
        return [
            " ".join(e.text.split()) for e in self.children(el, path) if e.text and e.text.strip()
        ]


class _Statement:
    """One <Stmt>, <Rpt> or <Ntfctn>: its account, balances and entries."""

    def __init__(self, xml: _Xml, el: Element, where: str) -> None:
        self.xml, self.el, self.where = xml, el, where
        self.kind = xml.message[0]

    def error(self, message: str) -> StatementError:
        return StatementError(f"{self.where}: {message}", format=_f(self.kind))

    def amount(self, el: Element | None, where: str) -> tuple[Decimal, str | None]:
        """An <Amt> exactly as written, with its Ccy attribute."""
        if el is None or el.text is None:
            raise self.error(f"{where} has no <Amt>")
        text = el.text.strip()
        if not _AMOUNT.match(text):
            raise self.error(f"{where}/Amt {text!r} is not a decimal amount like 1234.56")
        ccy = el.get("Ccy")
        return Decimal(text), ccy.strip().upper() if ccy else None

    def signed(self, el: Element, where: str) -> tuple[Decimal, str | None]:
        value, ccy = self.amount(self.xml.child(el, "Amt"), where)
        indicator = self.xml.text(el, "CdtDbtInd")
        if indicator not in ("CRDT", "DBIT"):
            raise self.error(f"{where}/CdtDbtInd is {indicator!r}, expected CRDT or DBIT")
        return (-value if indicator == "DBIT" else value), ccy

    def day(self, el: Element | None, where: str) -> date | None:
        """A <Dt> or <DtTm> child, read as the calendar date the bank wrote (no zone shift)."""
        if el is None:
            return None
        text = self.xml.first(el, "Dt", "DtTm")
        if text is None:
            return None
        if not _DATE.match(text):
            raise self.error(f"{where} {text!r} is not a date like 2024-01-31")
        try:
            return date.fromisoformat(text[:10])
        except ValueError as exc:
            raise self.error(f"{where} {text!r} is not a valid date") from exc

    def parts(self) -> list[StatementPart]:
        xml, acct = self.xml, self.xml.child(self.el, "Acct")
        if acct is None:
            raise self.error("has no <Acct> element")
        iban = xml.text(acct, "Id/IBAN")
        number = None if iban else xml.text(acct, "Id/Othr/Id")
        if iban is None and number is None:
            raise self.error("Acct has neither Id/IBAN nor Id/Othr/Id")
        balances = list(self.balances())
        entries = list(self.entries())
        currency = (
            xml.text(acct, "Ccy")
            or next((e[1] for e in entries), None)
            or next((b[2] for b in balances), None)
        )
        if currency is None:
            raise self.error("states no currency (no Acct/Ccy, no entry or balance with Ccy)")

        def part(ccy: str) -> StatementPart:
            return StatementPart(
                currency=ccy,
                iban=iban.replace(" ", "").upper() if iban else None,
                number=number,
                bank_code=xml.first(
                    acct,
                    "Svcr/FinInstnId/BICFI",
                    "Svcr/FinInstnId/BIC",
                    "Svcr/FinInstnId/ClrSysMmbId/MmbId",
                ),
                name=xml.text(acct, "Nm"),
                holder_name=xml.first(acct, "Ownr/Nm", "Ownr/Pty/Nm"),
                type=_ACCOUNT_TYPES.get(xml.text(acct, "Tp/Cd") or "", AccountType.CURRENT),
            )

        main = part(currency)
        self.apply_balances(main, balances)
        by_currency = {currency: main}
        for txn, ccy in entries:
            by_currency.setdefault(ccy, part(ccy) if ccy != currency else main)
            by_currency[ccy].transactions.append(txn)
        return list(by_currency.values())

    def balances(self) -> Iterator[tuple[str, Decimal, str, date | None]]:
        for index, bal in enumerate(self.xml.children(self.el, "Bal"), start=1):
            where = f"Bal[{index}]"
            code = self.xml.first(bal, "Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry") or ""
            value, ccy = self.signed(bal, where)
            if ccy is None:
                continue
            yield code, value, ccy, self.day(self.xml.child(bal, "Dt"), f"{where}/Dt")

    def apply_balances(
        self, part: StatementPart, balances: list[tuple[str, Decimal, str, date | None]]
    ) -> None:
        """Balances in the account's currency only; a balance without a date is not placed."""
        usable = [(c, v, d) for c, v, ccy, d in balances if ccy == part.currency and d]
        opening = [(v, d) for code in _OPENING for c, v, d in usable if c == code]
        closing = [(v, d) for c, v, d in usable if c in _CLOSING]
        interim = [(v, d) for c, v, d in usable if c in _INTERIM]
        available = [(v, d) for c, v, d in usable if c in _AVAILABLE]
        part.opening = opening[0] if opening else None
        if interim and not closing:
            closing = sorted(interim, key=lambda b: b[1])  # the latest; file order on ties
        part.closing = closing[-1] if closing else None
        part.available = sorted(available, key=lambda b: b[1])[-1][0] if available else None

    def entries(self) -> Iterator[tuple[TransactionRecord, str]]:
        fallback = self.xml.text(self.xml.child(self.el, "Acct"), "Ccy")
        for index, ntry in enumerate(self.xml.children(self.el, "Ntry"), start=1):
            entry = _Entry(self, ntry, f"Ntry[{index}]", fallback).read()
            if entry is not None:
                yield entry


class _Entry:
    """One <Ntry> with its transaction details."""

    def __init__(self, stmt: _Statement, el: Element, where: str, fallback: str | None) -> None:
        self.stmt, self.xml, self.el, self.where, self.fallback = (
            stmt,
            stmt.xml,
            el,
            where,
            fallback,
        )
        self.details = self.xml.children(el, "NtryDtls/TxDtls")

    def read(self) -> tuple[TransactionRecord, str] | None:
        xml, el, where = self.xml, self.el, self.where
        status_code = xml.first(el, "Sts/Cd", "Sts/Prtry", "Sts")
        if status_code == "INFO":
            return None
        if status_code is None:
            raise self.stmt.error(f"{where} has no <Sts> status")
        if status_code not in _STATUS:
            raise self.stmt.error(f"{where}/Sts is {status_code!r}, expected BOOK, PDNG or INFO")
        amount, ccy = self.stmt.signed(el, where)
        currency = ccy or self.fallback
        if currency is None:
            raise self.stmt.error(f"{where}/Amt has no Ccy attribute")
        booking = self.stmt.day(xml.child(el, "BookgDt"), f"{where}/BookgDt")
        value = self.stmt.day(xml.child(el, "ValDt"), f"{where}/ValDt")
        booking = booking or value
        if booking is None:
            raise self.stmt.error(f"{where} has neither BookgDt nor ValDt")
        reversal = (xml.text(el, "RvslInd") or "").lower() in ("true", "1")
        meta = self.meta(status_code, reversal)
        credit = (amount > 0) != reversal
        name = self.counterparty(credit=credit, what="Nm")
        txn = TransactionRecord(
            bank_id=xml.text(el, "AcctSvcrRef") or self.single("Refs/AcctSvcrRef"),
            booking_date=booking,
            amount=amount,
            currency=currency,
            description=self.description(),
            value_date=value,
            merchant=name,
            status=_STATUS[status_code],
            meta=meta,
            counterparty_name=name,
            counterparty_account=self.counterparty(credit=credit, what="Acct"),
        )
        return txn, currency

    def single(self, path: str) -> str | None:
        """A value every transaction detail agrees on, else None."""
        values = {v for d in self.details if (v := self.xml.text(d, path)) is not None}
        return values.pop() if len(values) == 1 else None

    def collect(self, path: str) -> list[str]:
        out: list[str] = []
        for d in self.details:
            out += [t for t in self.xml.texts(d, path) if t not in out]
        return out

    def counterparty(self, *, credit: bool, what: str) -> str | None:
        """The debtor of a credit, the creditor of a debit; the other one if only it is named.

        ``what``: ``Nm`` the name, ``IBAN`` the account's IBAN, ``Acct`` its IBAN or other id.
        """
        roles = ("Dbtr", "Cdtr") if credit else ("Cdtr", "Dbtr")
        for role in roles:
            if what == "Nm":
                paths: tuple[str, ...] = (f"RltdPties/{role}/Nm", f"RltdPties/{role}/Pty/Nm")
            elif what == "IBAN":
                paths = (f"RltdPties/{role}Acct/Id/IBAN",)
            else:
                paths = (f"RltdPties/{role}Acct/Id/IBAN", f"RltdPties/{role}Acct/Id/Othr/Id")
            for path in paths:
                if (value := self.single(path)) is not None:
                    return value
        return None

    def description(self) -> str:
        parts = self.collect("RmtInf/Ustrd")
        parts += [r for r in self.collect("RmtInf/Strd/CdtrRefInf/Ref") if r not in parts]
        parts += [r for r in self.collect("RmtInf/Strd/AddtlRmtInf") if r not in parts]
        if parts:
            return " ".join(parts)
        return (
            self.xml.text(self.el, "AddtlNtryInf")
            or " ".join(self.collect("AddtlTxInf"))
            or self.counterparty(credit=True, what="Nm")
            or ""
        )

    def meta(self, status_code: str, reversal: bool) -> dict[str, Any]:
        xml, el = self.xml, self.el
        meta: dict[str, Any] = {"status_code": status_code}
        if reversal:
            meta["reversal"] = True
        simple = {
            "entry_ref": xml.text(el, "NtryRef"),
            "account_servicer_ref": xml.text(el, "AcctSvcrRef"),
            "additional_info": xml.text(el, "AddtlNtryInf"),
            "batch_message_id": xml.text(el, "NtryDtls/Btch/MsgId"),
            "batch_payment_info_id": xml.text(el, "NtryDtls/Btch/PmtInfId"),
            "counterparty_iban": self.counterparty(credit=self.credit_side(), what="IBAN"),
            "bank_transaction_code": self.domain_code(),
            "proprietary_code": xml.text(el, "BkTxCd/Prtry/Cd"),
        }
        meta.update({k: v for k, v in simple.items() if v is not None})
        for tag, key in _REFS.items():
            values = self.collect(f"Refs/{tag}")
            if values:
                meta[key] = values[0] if len(values) == 1 else values
        if self.details:
            meta["transaction_details"] = len(self.details)
        amounts = self.other_amounts()
        if amounts:
            meta["other_amounts"] = amounts
        return meta

    def credit_side(self) -> bool:
        indicator = self.xml.text(self.el, "CdtDbtInd") == "CRDT"
        reversal = (self.xml.text(self.el, "RvslInd") or "").lower() in ("true", "1")
        return indicator != reversal

    def domain_code(self) -> str | None:
        parts = [
            self.xml.text(self.el, p)
            for p in ("BkTxCd/Domn/Cd", "BkTxCd/Domn/Fmly/Cd", "BkTxCd/Domn/Fmly/SubFmlyCd")
        ]
        return "/".join(p for p in parts if p) or None

    def other_amounts(self) -> list[str]:
        """Transaction-detail amounts (instructed, counter values...) as written, for reference."""
        out: list[str] = []
        for d in self.details:
            found = [("transaction_detail", self.xml.child(d, "Amt"))]
            for tag, label in _AMOUNT_DETAILS.items():
                found.append((label, self.xml.child(d, f"AmtDtls/{tag}/Amt")))
            for label, amt in found:
                if amt is not None and amt.text:
                    value = f"{label} {amt.text.strip()} {amt.get('Ccy', '')}".strip()
                    if value not in out:
                        out.append(value)
        return out
