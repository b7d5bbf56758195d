"""OFX requests built with ofxtools, and the answers read back into bankhub records.

Requests are only serialised here (``OFXClient.serialize``); the connector posts them through
bankhub's own HTTP client. The account list (ACCTINFO) is read with ofxtools' models; a
statement answer is read by bankhub's OFX reader (:mod:`bankhub.statements.ofx`), the same that
reads statement files, so that a statement reads alike however it reached bankhub. Nothing here
keeps the password: it goes into the one request body being built and nowhere else.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from io import BytesIO
from typing import Any

from ofxtools.Client import OFXClient
from ofxtools.header import OFXHeaderError
from ofxtools.models import (
    ACCTINFORQ,
    ACCTINFOTRNRQ,
    BANKMSGSRQV1,
    CREDITCARDMSGSRQV1,
    SIGNUPMSGSRQV1,
)
from ofxtools.models.ofx import OFX
from ofxtools.Parser import OFXTree, ParseError

from bankhub.clock import Clock
from bankhub.connectors.base import (
    AccountLocked,
    AccountRecord,
    AccountType,
    ConnectorFailure,
    InvalidCredentials,
    PasswordExpired,
    ProviderUnavailable,
)
from bankhub.statements import ofx as reader
from bankhub.statements.model import StatementAccount, StatementError

#: ACCTINFORQ asks for every account changed since this date: all of them
EPOCH = datetime(1990, 1, 1, tzinfo=UTC)

BANK, CREDIT_CARD = "bank", "creditcard"
_SKIPPED = {"INVACCTINFO": "investment", "BPACCTINFO": "bill payment"}
_ACCOUNT_TYPES = {
    "CHECKING": AccountType.CURRENT,
    "SAVINGS": AccountType.SAVINGS,
    "MONEYMRKT": AccountType.SAVINGS,
    "CD": AccountType.SAVINGS,
    "CREDITLINE": AccountType.LOAN,
}


@dataclass(frozen=True, slots=True)
class Settings:
    """The institution's OFX parameters, from the service catalogue."""

    url: str
    org: str | None
    fid: str | None
    bankid: str | None
    version: int
    appid: str
    appver: str
    language: str

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        url = str(params.get("url") or "")
        if not url:
            raise ProviderUnavailable("This institution has no OFX server URL in the catalogue")
        try:
            version = int(params.get("ofx_version", 220))
        except (TypeError, ValueError):
            raise ProviderUnavailable("The catalogue's ofx_version is not a number") from None

        def opt(key: str) -> str | None:
            value = params.get(key)
            return str(value) if value not in (None, "") else None

        return cls(
            url=url,
            org=opt("org"),
            fid=opt("fid"),
            bankid=opt("bankid"),
            version=version,
            appid=opt("app_id") or "QWIN",
            appver=opt("app_version") or "2700",
            language=opt("language") or "ENG",
        )


@dataclass(frozen=True, slots=True)
class AccountRef:
    """What a statement request needs to name an account."""

    kind: str
    acctid: str
    bankid: str | None = None
    accttype: str | None = None
    desc: str | None = None

    def to_state(self) -> dict[str, str]:
        fields = {
            "kind": self.kind,
            "acctid": self.acctid,
            "bankid": self.bankid,
            "accttype": self.accttype,
            "desc": self.desc,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> AccountRef:
        return cls(
            kind=str(data["kind"]),
            acctid=str(data["acctid"]),
            bankid=data.get("bankid"),
            accttype=data.get("accttype"),
            desc=data.get("desc"),
        )


class Requests:
    """Serialised OFX requests for one login; a new TRNUID and file UID every time."""

    def __init__(self, settings: Settings, userid: str, clock: Clock) -> None:
        self.settings = settings
        self.client = _Client(
            settings.url,
            clock,
            userid=userid,
            org=settings.org,
            fid=settings.fid,
            version=settings.version,
            appid=settings.appid,
            appver=settings.appver,
            language=settings.language,
            close_elements=settings.version >= 200 or None,
        )

    @property
    def headers(self) -> dict[str, str]:
        return self.client.http_headers

    def account_info(self, password: str) -> bytes:
        trn = ACCTINFOTRNRQ(trnuid=self.client.uuid(), acctinforq=ACCTINFORQ(dtacctup=EPOCH))
        return self._serialize(password, signupmsgsrqv1=SIGNUPMSGSRQV1(trn))

    def statement(
        self,
        password: str,
        account: AccountRef,
        since: date | None,
        until: date | None,
        *,
        transactions: bool = True,
    ) -> bytes:
        start = _midnight(since) if since else None
        end = _midnight(until + timedelta(days=1)) if until else None
        if account.kind == CREDIT_CARD:
            card = self.client.ccstmttrnrq(account.acctid, start, end, transactions)
            return self._serialize(password, creditcardmsgsrqv1=CREDITCARDMSGSRQV1(card))
        bankid = account.bankid or self.settings.bankid
        if not bankid:
            raise ProviderUnavailable(
                "The bank named no routing number (BANKID) for this account and the catalogue "
                "has no bankid for the institution"
            )
        trn = self.client.stmttrnrq(
            bankid, account.acctid, account.accttype or "CHECKING", start, end, transactions
        )
        return self._serialize(password, bankmsgsrqv1=BANKMSGSRQV1(trn))

    def _serialize(self, password: str, **messages: Any) -> bytes:
        ofx = OFX(signonmsgsrqv1=self.client.signon(password), **messages)
        return self.client.serialize(ofx, newfileuid=self.client.uuid())


class _Client(OFXClient):
    """ofxtools' client, with DTCLIENT taken from bankhub's clock."""

    def __init__(self, url: str, clock: Clock, **kwargs: Any) -> None:
        super().__init__(url, **{k: v for k, v in kwargs.items() if v is not None})
        self._clock = clock

    def dtclient(self) -> datetime:
        return self._clock().astimezone(UTC)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


# --- answers ---------------------------------------------------------------------------------


def parse(body: bytes) -> Any:
    """An account-list answer as ofxtools' model; a body that is not OFX is the bank's fault."""
    tree = OFXTree()
    try:
        with warnings.catch_warnings():
            # banks add private tags (<INTU.BID>) and other harmless quirks
            warnings.simplefilter("ignore")
            tree.parse(BytesIO(body))
            return tree.convert()
    except (ParseError, OFXHeaderError, ValueError, TypeError, KeyError, IndexError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ProviderUnavailable(f"The bank's OFX answer could not be read: {reason}") from None


def check_status(code: int, severity: str, message: str | None, what: str) -> None:
    """Raise the failure an OFX STATUS stands for (OFX 2.2 §2.7 and §3.1.5)."""
    said = f": {message}" if message else ""
    failure: ConnectorFailure | None = None
    if code == 15500:
        failure = InvalidCredentials("The bank rejected the user id or password")
    elif code == 15000:
        failure = PasswordExpired(
            "The bank wants a new password: change it at the bank, then connect again"
        )
    elif code == 15502:
        failure = AccountLocked("The bank has locked this login; contact the bank to unlock it")
    elif code == 15510:
        failure = InvalidCredentials(
            "The bank does not recognise this application (CLIENTUID); approve it at the bank "
            "(often through an e-mail or a message in online banking), then connect again"
        )
    elif code in (15511, 15512, 15513):
        failure = ProviderUnavailable(
            f"The bank asks for a multi-factor challenge (OFX status {code}){said}, which OFX "
            "Direct Connect in bankhub cannot answer"
        )
    elif code != 0 and severity == "ERROR":
        failure = ProviderUnavailable(f"The bank refused the {what} (OFX status {code}){said}")
    if failure is not None:
        raise failure


def _check_model(status: Any, what: str) -> None:
    check_status(int(status.code), str(status.severity), status.message, what)


def _check_read(status: reader.Status, what: str) -> None:
    try:
        code = int(status.code)
    except ValueError:
        raise ProviderUnavailable(
            f"The bank's OFX answer has a {what} status without a numeric code"
        ) from None
    check_status(code, status.severity.upper(), status.message or None, what)


def signon(ofx: Any) -> None:
    if ofx.signonmsgsrsv1 is None:
        raise ProviderUnavailable("The bank's OFX answer has no sign-on response")
    _check_model(ofx.signonmsgsrsv1.sonrs.status, "sign-on")


def account_refs(ofx: Any) -> tuple[list[AccountRef], list[str]]:
    """Bank and credit-card accounts from an ACCTINFO answer, and notices for skipped ones."""
    signon(ofx)
    if not ofx.signupmsgsrsv1:
        raise ProviderUnavailable("The bank's OFX answer has no account list")
    refs: list[AccountRef] = []
    notices: list[str] = []
    for trnrs in ofx.signupmsgsrsv1:
        _check_model(trnrs.status, "account list request")
        for info in trnrs.acctinfors or []:
            desc = info.desc or None
            for item in info:
                kind = type(item).__name__
                if kind == "BANKACCTINFO":
                    acct = item.bankacctfrom
                    refs.append(AccountRef(BANK, acct.acctid, acct.bankid, acct.accttype, desc))
                elif kind == "CCACCTINFO":
                    refs.append(AccountRef(CREDIT_CARD, item.ccacctfrom.acctid, desc=desc))
                else:
                    label = _SKIPPED.get(kind, kind)
                    notices.append(
                        f"The {label} account '{desc or '?'}' is not read through OFX Direct "
                        "Connect; it was skipped."
                    )
    return refs, notices


def statement(body: bytes, account: AccountRef) -> StatementAccount:
    """The one statement of a statement answer that answers the request for ``account``,
    read as a statement file would be."""
    try:
        document = reader.read(body)
    except StatementError as exc:
        raise _unreadable(exc) from None
    sonrs = next((s for s in document.statuses if s.response == "SONRS"), None)
    if sonrs is None:
        raise ProviderUnavailable("The bank's OFX answer has no sign-on response")
    _check_read(sonrs, "sign-on")
    response = "CCSTMTTRNRS" if account.kind == CREDIT_CARD else "STMTTRNRS"
    for status in document.statuses:
        if status.response == response:
            _check_read(status, "statement request")
    if not document.root.walk("STMTRS") and not document.root.walk("CCSTMTRS"):
        raise ProviderUnavailable("The bank's OFX answer holds no statement")
    try:
        statements = document.statements()
    except StatementError as exc:
        raise _unreadable(exc) from None
    credit_card = account.kind == CREDIT_CARD
    for stmt in statements:
        if stmt.number == account.acctid and (stmt.type == AccountType.CREDIT_CARD) == credit_card:
            return stmt
    raise ProviderUnavailable(f"The bank's OFX answer holds no statement for {_masked(account)}")


def _unreadable(exc: StatementError) -> ProviderUnavailable:
    return ProviderUnavailable(f"The bank's OFX answer could not be read: {exc.message}")


def account_record(account: AccountRef, stmt: StatementAccount) -> AccountRecord:
    kind = AccountType.CREDIT_CARD if account.kind == CREDIT_CARD else None
    return AccountRecord(
        bank_id=account.acctid,
        name=account.desc or f"{_type_label(account)} {_masked(account)}",
        type=kind or _ACCOUNT_TYPES.get(account.accttype or "", AccountType.OTHER),
        currency=stmt.currency,
        balance=stmt.closing_balance,
        available_balance=stmt.available_balance,
        number=account.acctid,
        balance_date=stmt.closing_date,
    )


def _type_label(account: AccountRef) -> str:
    if account.kind == CREDIT_CARD:
        return "Credit card"
    return (account.accttype or "Account").replace("MONEYMRKT", "Money market").capitalize()


def _masked(account: AccountRef) -> str:
    return f"…{account.acctid[-4:]}"
