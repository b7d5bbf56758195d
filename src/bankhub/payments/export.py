"""Handing a payment or batch to the user as a pain.001 file instead of sending it to the bank
(for banks without a payments API: the user uploads the file to their online banking).

A payment goes to its bank one way only. An export is allowed while the payment waits for the
user and has not been sent (``pending_authorisation``, no ``sent_at``), and moves it to
``exported``, a final status: the connect page no longer sends it, the partner can no longer
cancel it here, and the sweep leaves it alone. The payment's row is locked while this is
decided, as it is when the connect page sends it, so only one of the two ever happens.
bankhub never learns what the bank did with the file, so the payment never becomes
``executed``; its transfers are linked when they appear in the debtor account's transactions,
by the ``EndToEndId`` each carries in the file.

Downloading the file again gives the same file (same ``MsgId``, same creation time), in
either version; each download is audited (``payment.exported``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account
from bankhub.catalogue import Service
from bankhub.clock import Clock, as_utc
from bankhub.connectors.base import PaymentStatus, end_to_end_id
from bankhub.errors import DomainError, ErrorCode
from bankhub.payments import pain001, services
from bankhub.payments.models import BATCH, Payment, PaymentStatusChange
from bankhub.payments.validation import MAX_NAME, sepa_text
from bankhub.security.crypto import Cipher

EXPORT_REASON = "Exported as a pain.001 file for upload at the bank"


@dataclass(frozen=True, slots=True)
class ExportedFile:
    payment: Payment
    name: str
    content: bytes
    #: this download moved the payment to ``exported`` (an earlier one did not)
    first: bool
    media_type: str = pain001.MEDIA_TYPE


def _refuse(payment: Payment, message: str, problems: list[str] | None = None) -> DomainError:
    extra: dict[str, object] = {"id": payment.id, "status": payment.status}
    if problems:
        extra["problems"] = problems
    return DomainError(ErrorCode.PAYMENT_NOT_EXPORTABLE, message, extra)


def _debtor_bic(iban: str, service: Service | None) -> str | None:
    """The debtor bank's BIC: the IBAN's bank in schwifty's registry, else the catalogue's;
    ``None`` where neither is known (the file then says ``NOTPROVIDED``)."""
    try:
        found = IBAN(iban).bic
    except SchwiftyException:
        found = None
    if found is not None:
        return str(found)
    if service is not None and service.bic:
        try:
            return str(BIC(service.bic))
        except SchwiftyException:
            return None
    return None


async def _exported_at(session: AsyncSession, payment: Payment) -> datetime | None:
    at = await session.scalar(
        select(PaymentStatusChange.at)
        .where(
            PaymentStatusChange.app_id == payment.app_id,
            PaymentStatusChange.payment_id == payment.id,
            PaymentStatusChange.status == PaymentStatus.EXPORTED,
        )
        .order_by(PaymentStatusChange.id)
        .limit(1)
    )
    return as_utc(at) if at is not None else None


async def export(
    session: AsyncSession,
    *,
    cipher: Cipher,
    clock: Clock,
    account_details: Callable[[Account], dict[str, str | None]],
    service: Service | None,
    app_id: int,
    payment_id: str,
    kind: str,
    version: str,
    debtor_name: str | None,
) -> ExportedFile:
    """The payment's pain.001 file; the first export moves it to ``exported`` (its history, its
    ``payment.status`` event). Refused with ``PaymentNotExportable`` naming every problem. The
    caller audits the download (it hands out account data: the debtor's IBAN and name)."""
    payment = await services.get(session, app_id, payment_id, kind=kind, lock=True)
    now = clock()
    created_at = await _exported_at(session, payment)
    first = created_at is None
    if first and (
        payment.status != PaymentStatus.PENDING_AUTHORISATION or payment.sent_at is not None
    ):
        where = (
            "is on its way to the bank"
            if payment.status == PaymentStatus.PENDING_AUTHORISATION
            else f"is {payment.status}"
        )
        raise _refuse(
            payment,
            f"The payment {where}; only one waiting for the user's authorisation, never sent "
            "to the bank, can be exported as a file.",
        )
    seen = await services.view(session, cipher, payment)
    problems: list[str] = []
    account = (
        await session.get(Account, payment.account_id) if payment.account_id is not None else None
    )
    debtor_iban = seen.details.get("debtor_iban")
    holder: str | None = None
    if account is None:
        problems.append(
            "the file needs the debtor account: name it with `account_id` when creating the "
            "payment - at `$.account_id`"
        )
    else:
        opened = account_details(account)
        debtor_iban = debtor_iban or opened.get("iban")
        holder = opened.get("holder_name")
        if not debtor_iban:
            problems.append("the bank gave no IBAN for the debtor account - at `$.account_id`")
    name = _debtor_name(problems, debtor_name if debtor_name is not None else holder)
    if payment.currency != "EUR":
        problems.append(
            f"a SEPA credit transfer file carries euros only, not {payment.currency} "
            "- at `$.currency`"
        )
    prefix = "$.payments[{}]" if payment.kind == BATCH else "$"
    for item, details in seen.items:
        if not details.get("creditor_iban"):
            problems.append(
                "a SEPA credit transfer file pays to an IBAN only - at "
                f"`{prefix.format(item.position)}.creditor_iban`"
            )
    when = payment.execution_date or (created_at or now).date()
    if first and when < now.date():
        problems.append(
            f"the execution date {when.isoformat()} has passed; create a new payment "
            "- at `$.execution_date`"
        )
    if problems or name is None or not debtor_iban:
        first_problem = problems[0] if len(problems) == 1 else f"{len(problems)} problems"
        raise _refuse(payment, f"The payment cannot be exported: {first_problem}", problems)
    content = pain001.credit_transfer_file(
        message_id=payment.id.replace("-", ""),
        created_at=created_at or now,
        debtor=pain001.Debtor(name, debtor_iban, _debtor_bic(debtor_iban, service)),
        transfers=[
            _transfer(payment.id, item.position, details, when) for item, details in seen.items
        ],
        version=version,
    )
    if first:
        await services.set_status(session, payment, PaymentStatus.EXPORTED, EXPORT_REASON, now)
    return ExportedFile(payment, pain001.file_name(payment.id, version), content, first)


def _debtor_name(problems: list[str], given: str | None) -> str | None:
    if given is None or not given.strip():
        problems.append(
            "the bank gave no account holder name; send it as `debtor_name` - at `$.debtor_name`"
        )
        return None
    converted = sepa_text(" ".join(given.split()))
    if converted is None:
        problems.append(
            "the account holder name has characters outside the SEPA character set; send it "
            "as `debtor_name` - at `$.debtor_name`"
        )
        return None
    # a holder name is the bank's, not the partner's: cut to SEPA's length rather than refused
    return converted[:MAX_NAME]


def _transfer(
    payment_id: str, position: int, details: dict[str, str | None], when: date
) -> pain001.FileTransfer:
    return pain001.FileTransfer(
        end_to_end_id=end_to_end_id(payment_id, position),
        creditor_name=str(details["creditor_name"]),
        creditor_iban=str(details["creditor_iban"]),
        creditor_bic=details.get("creditor_bic"),
        amount=Decimal(str(details["amount"])),
        remittance=details.get("remittance"),
        execution_date=when,
    )
