"""The payments' wire shapes (``/v2/payment``), in the seed's style: ``{"data", "version"}``,
amounts as decimal strings at the currency's scale (as checked and stored: ISO 4217's minor
units), times as the seed writes them."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from bankhub.api.schemas import VERSION, wire_time
from bankhub.clock import as_utc
from bankhub.connectors.base import end_to_end_id
from bankhub.payments.services import PaymentView
from bankhub.payments.validation import MAX_BATCH

#: generous caps: the lengths that count are checked after transliteration, with the field named
Text = Annotated[str, msgspec.Meta(max_length=1000)]
Short = Annotated[str, msgspec.Meta(max_length=100)]
CustomerId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
ServiceId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
AccountId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class TransferIn(msgspec.Struct, forbid_unknown_fields=True):
    """One credit transfer: the creditor by IBAN, or by local account number and BIC."""

    creditor_name: Text
    amount: Short
    currency: Short
    creditor_iban: Short | None = None
    creditor_account: Short | None = None
    creditor_bic: Short | None = None
    remittance_information: Text | None = None


class PaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v2/payment``: one credit transfer from the customer's account at ``service_id``
    (``account_id``, or chosen by the user at the bank), authorised on the connect page."""

    customer_id: CustomerId
    service_id: ServiceId
    callback_url: Url
    creditor_name: Text
    amount: Short
    currency: Short
    creditor_iban: Short | None = None
    creditor_account: Short | None = None
    creditor_bic: Short | None = None
    remittance_information: Text | None = None
    account_id: AccountId | None = None
    execution_date: Short | None = None


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v2/payment/batch``: up to 1,000 transfers from one account, authorised once."""

    customer_id: CustomerId
    service_id: ServiceId
    callback_url: Url
    payments: Annotated[list[TransferIn], msgspec.Meta(max_length=MAX_BATCH + 1)]
    account_id: AccountId | None = None
    execution_date: Short | None = None
    #: the partner's control sum; refused when the transfers add up to something else
    total: Short | None = None


class PaymentSettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool
    chosen_by: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    daily_count: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100
    daily_amount: Short = "10000"


class PaymentSettingsOut(msgspec.Struct):
    enabled: bool
    daily_count: int
    daily_amount: str
    set_by: str | None
    set_at: str | None


class PaymentSettingsEnvelope(msgspec.Struct):
    data: PaymentSettingsOut
    version: str = VERSION


class StatusChangeOut(msgspec.Struct):
    status: str
    reason: str | None
    at: str


class TransferOut(msgspec.Struct):
    position: int
    status: str
    reason: str | None
    end_to_end_id: str
    creditor_name: str
    creditor_iban: str | None
    creditor_account: str | None
    creditor_bic: str | None
    amount: str
    currency: str
    remittance_information: str | None


class PaymentOut(msgspec.Struct):
    id: str
    status: str
    reason: str | None
    #: where the user authorises the payment (or a cancellation the bank wants them to
    #: authorise); null while there is nothing for them to open
    connect_url: str | None
    customer_id: str
    service_id: int
    account_id: int | None
    creditor_name: str
    creditor_iban: str | None
    creditor_account: str | None
    creditor_bic: str | None
    amount: str
    currency: str
    remittance_information: str | None
    execution_date: str | None
    end_to_end_id: str
    created_at: str
    updated_at: str
    history: list[StatusChangeOut]


class PaymentEnvelope(msgspec.Struct):
    data: PaymentOut
    version: str = VERSION


class BatchOut(msgspec.Struct):
    id: str
    status: str
    reason: str | None
    connect_url: str | None
    customer_id: str
    service_id: int
    account_id: int | None
    count: int
    total: str
    currency: str
    execution_date: str | None
    created_at: str
    updated_at: str
    history: list[StatusChangeOut]
    payments: list[TransferOut]


class BatchEnvelope(msgspec.Struct):
    data: BatchOut
    version: str = VERSION


class PaymentSummaryOut(msgspec.Struct):
    id: str
    kind: str
    status: str
    reason: str | None
    customer_id: str
    service_id: int
    count: int
    total: str
    currency: str
    created_at: str
    updated_at: str


class PaymentListEnvelope(msgspec.Struct):
    data: list[PaymentSummaryOut]
    version: str = VERSION


def _time(value: Any) -> str:
    return wire_time(as_utc(value)) or ""


def _history(seen: PaymentView) -> list[StatusChangeOut]:
    return [StatusChangeOut(h.status, h.reason, _time(h.at)) for h in seen.history]


def _transfers(seen: PaymentView) -> list[TransferOut]:
    return [
        TransferOut(
            position=item.position,
            status=item.status,
            reason=item.status_reason,
            end_to_end_id=end_to_end_id(seen.payment.id, item.position),
            creditor_name=d["creditor_name"],
            creditor_iban=d["creditor_iban"],
            creditor_account=d["creditor_account"],
            creditor_bic=d["creditor_bic"],
            amount=d["amount"],
            currency=d["currency"],
            remittance_information=d["remittance"],
        )
        for item, d in seen.items
    ]


def payment_out(seen: PaymentView, connect_url: str | None) -> PaymentOut:
    p = seen.payment
    (transfer,) = _transfers(seen)
    return PaymentOut(
        id=p.id,
        status=p.status,
        reason=p.status_reason,
        connect_url=connect_url,
        customer_id=p.customer_id,
        service_id=p.service_id,
        account_id=p.account_id,
        creditor_name=transfer.creditor_name,
        creditor_iban=transfer.creditor_iban,
        creditor_account=transfer.creditor_account,
        creditor_bic=transfer.creditor_bic,
        amount=transfer.amount,
        currency=transfer.currency,
        remittance_information=transfer.remittance_information,
        execution_date=p.execution_date.isoformat() if p.execution_date else None,
        end_to_end_id=transfer.end_to_end_id,
        created_at=_time(p.created_at),
        updated_at=_time(p.updated_at),
        history=_history(seen),
    )


def batch_out(seen: PaymentView, connect_url: str | None) -> BatchOut:
    p = seen.payment
    return BatchOut(
        id=p.id,
        status=p.status,
        reason=p.status_reason,
        connect_url=connect_url,
        customer_id=p.customer_id,
        service_id=p.service_id,
        account_id=p.account_id,
        count=p.item_count,
        total=seen.details["total"],
        currency=p.currency,
        execution_date=p.execution_date.isoformat() if p.execution_date else None,
        created_at=_time(p.created_at),
        updated_at=_time(p.updated_at),
        history=_history(seen),
        payments=_transfers(seen),
    )
