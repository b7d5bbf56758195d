"""The SimpleFIN protocol's data: setup tokens, access URLs, account sets and their records.

Every function here is pure. Messages never contain the claim URL or the access URL: both
carry credentials.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    InvalidCredentials,
    ProviderUnavailable,
    TransactionRecord,
    TransactionStatus,
)

_ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
#: the longest bridge message passed on to the user
MAX_NOTICE_CHARS = 300


class ProtocolError(ProviderUnavailable):
    """The SimpleFIN server sent something the protocol does not allow."""


@dataclass(frozen=True, slots=True)
class Access:
    """An access URL split into the resource root and its basic-auth credentials."""

    root: str
    username: str
    password: str


def claim_url(token: str, *, allow_http: bool) -> str:
    """Decode a setup token (Base64 of the claim URL)."""
    text = "".join(token.split())
    if not text:
        raise InvalidCredentials("Enter the SimpleFIN setup token")
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if "-" in text or "_" in text else None)
    except (binascii.Error, ValueError):
        raise InvalidCredentials(
            "The SimpleFIN setup token is not valid: it is not Base64 text; copy the whole token"
        ) from None
    url = raw.decode("utf-8", errors="replace").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidCredentials(
            "The SimpleFIN setup token is not valid: it does not hold a claim URL"
        )
    _require_tls(parts, allow_http, "The SimpleFIN setup token points to a plain-HTTP server")
    return url


def parse_access_url(url: str, *, allow_http: bool) -> Access:
    """Check an access URL and split off its credentials."""
    try:
        parts = urlsplit(url.strip())
        username, password = parts.username, parts.password
        hostname = parts.hostname
    except ValueError:
        raise ProtocolError("The SimpleFIN server answered with an unusable access URL") from None
    if parts.scheme not in ("https", "http") or not hostname or not username or password is None:
        raise ProtocolError("The SimpleFIN server answered with an unusable access URL")
    _require_tls(parts, allow_http, "The SimpleFIN server handed out a plain-HTTP access URL")
    netloc = parts.netloc.rsplit("@", 1)[1]
    root = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return Access(root, unquote(username), unquote(password))


def _require_tls(parts: SplitResult, allow_http: bool, message: str) -> None:
    if parts.scheme != "https" and not allow_http:
        raise InvalidCredentials(f"{message}; SimpleFIN is only used over HTTPS")


def epoch(day: date) -> int:
    """The Unix time of ``day`` at midnight UTC."""
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def window(since: date | None, until: date | None) -> tuple[int | None, int | None]:
    """``start-date`` (inclusive) and ``end-date`` (exclusive) covering whole days."""
    start = epoch(since) if since else None
    end = epoch(until + timedelta(days=1)) if until else None
    return start, end


def decode_account_set(body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``accounts`` and the sanitized ``errors`` of an Account Set; numbers never become
    floats."""
    try:
        data = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("The SimpleFIN server sent an answer that is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("The SimpleFIN server sent an answer that is not an account set")
    accounts, errors = data.get("accounts"), data.get("errors", [])
    if not isinstance(accounts, list) or not all(isinstance(a, dict) for a in accounts):
        raise ProtocolError("The SimpleFIN server's answer has no list of accounts")
    if not isinstance(errors, list):
        raise ProtocolError("The SimpleFIN server's answer has an 'errors' that is not a list")
    return accounts, [m for m in (sanitize(str(e)) for e in errors) if m]


def sanitize(message: str) -> str:
    """A bridge message made safe to show: no control characters, bounded length."""
    text = " ".join(_CONTROL.sub(" ", message).split())
    if len(text) > MAX_NOTICE_CHARS:
        text = text[: MAX_NOTICE_CHARS - 1] + "…"
    return text


def amount(value: object, what: str) -> Decimal:
    """A numeric string (or a JSON number already read as Decimal/int) as a Decimal."""
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise ProtocolError(f"The SimpleFIN server sent no usable {what}")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ProtocolError(f"The SimpleFIN server sent a {what} that is not a number") from None
    if not number.is_finite():
        raise ProtocolError(f"The SimpleFIN server sent a {what} that is not a number")
    return number


def timestamp(value: object, what: str) -> datetime | None:
    """A Unix epoch timestamp as an aware UTC datetime; ``0`` or absent is None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ProtocolError(f"The SimpleFIN server sent a {what} that is not a timestamp")
    try:
        seconds = int(Decimal(value))
        return datetime.fromtimestamp(seconds, UTC) if seconds else None
    except (InvalidOperation, ValueError, OverflowError):
        raise ProtocolError(f"The SimpleFIN server sent a {what} that is not a timestamp") from None


def text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"The SimpleFIN server sent a '{key}' that is not text")
    return value.strip() or None


def currency_of(raw: Mapping[str, Any], custom: Mapping[str, str]) -> str | None:
    """The ISO 4217 code of an account; a custom currency (a URL) only when mapped."""
    value = text(raw, "currency")
    if value is None:
        raise ProtocolError("The SimpleFIN server sent an account without a currency")
    if _ISO_CURRENCY.match(value.upper()) and "/" not in value:
        return value.upper()
    mapped = custom.get(value)
    if mapped and _ISO_CURRENCY.match(mapped.upper()):
        return mapped.upper()
    return None


def account_record(raw: Mapping[str, Any], currency: str) -> AccountRecord:
    ident = text(raw, "id")
    name = text(raw, "name")
    if not ident or not name:
        raise ProtocolError("The SimpleFIN server sent an account without an id or name")
    org = raw.get("org")
    bank = None
    if isinstance(org, Mapping):
        bank = text(org, "name") or text(org, "domain")
    balance = amount(raw.get("balance"), "balance")
    available = raw.get("available-balance")
    return AccountRecord(
        bank_id=ident,
        name=f"{name} ({bank})" if bank and bank.casefold() not in name.casefold() else name,
        type=AccountType.OTHER,
        currency=currency,
        balance=balance,
        available_balance=amount(available, "available balance") if available is not None else None,
    )


def transaction_record(raw: Mapping[str, Any], currency: str, today: date) -> TransactionRecord:
    ident = text(raw, "id")
    if not ident:
        raise ProtocolError("The SimpleFIN server sent a transaction without an id")
    posted = timestamp(raw.get("posted"), "posted date")
    transacted = timestamp(raw.get("transacted_at"), "transaction date")
    pending = raw.get("pending") is True or posted is None
    # a pending row may lack a posted date; it is shown on the day it happened, else today
    when = (transacted or posted) if pending else posted
    booking = when.date() if when else today
    description = text(raw, "description") or ""
    payee, memo = text(raw, "payee"), text(raw, "memo")
    meta: dict[str, Any] = {}
    if memo:
        meta["memo"] = memo
    if transacted:
        meta["transacted_at"] = transacted.isoformat()
    return TransactionRecord(
        bank_id=ident,
        booking_date=booking,
        amount=amount(raw.get("amount"), "transaction amount"),
        currency=currency,
        description=description or payee or memo or "",
        value_date=transacted.date() if transacted and not pending else None,
        merchant=payee,
        status=TransactionStatus.PENDING if pending else TransactionStatus.BOOKED,
        meta=meta or None,
    )
