"""Payments of an app: the switch and limits, creating a payment or batch, reading them, and
recording what the bank says (status history, ``payment.status`` events, the audit log).

Every function works in the caller's unit of work and never commits; the bank is called by
:mod:`bankhub.payments.sending`, between units of work.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account
from bankhub.audit import services as audit
from bankhub.catalogue import Catalogue, Service
from bankhub.clock import Clock, as_utc
from bankhub.connectors.base import (
    CreditTransfer,
    PaymentAnswer,
    PaymentOrder,
    PaymentStatus,
    end_to_end_id,
)
from bankhub.customers import services as customers
from bankhub.customers.models import Customer
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.events import services as events
from bankhub.logins import services as logins
from bankhub.logins.models import ConnectToken, Login
from bankhub.partners import modes
from bankhub.partners.models import App
from bankhub.payments import validation
from bankhub.payments.models import (
    BATCH,
    SINGLE,
    Payment,
    PaymentItem,
    PaymentSettings,
    PaymentStatusChange,
)
from bankhub.payments.validation import Problems, Transfer

__all__ = ["BATCH", "SINGLE"]
from bankhub.security.crypto import Cipher, associated_data

PAYMENT_STATUS = events.PAYMENT_STATUS
#: what an owner gets when switching payments on without naming limits
DEFAULT_DAILY_COUNT = 100
DEFAULT_DAILY_AMOUNT = Decimal("10000")


# --- the switch and the limits ---------------------------------------------------------------


async def settings_of(session: AsyncSession, app_id: int) -> PaymentSettings | None:
    return await session.get(PaymentSettings, app_id)


async def set_settings(
    session: AsyncSession,
    app: App,
    *,
    enabled: bool,
    daily_count: int,
    daily_amount: Decimal,
    chosen_by: str,
    now: datetime,
    actor: str,
    request_id: str | None,
) -> PaymentSettings:
    """Switch payment initiation on or off for ``app`` and set its daily limits; audited."""
    settings = await settings_of(session, app.id)
    if settings is None:
        settings = PaymentSettings(app_id=app.id)
        session.add(settings)
    before = (
        None
        if settings.set_at is None
        else {
            "enabled": settings.enabled,
            "daily_count": settings.daily_count,
            "daily_amount": str(settings.daily_amount),
        }
    )
    settings.enabled = enabled
    settings.daily_count = daily_count
    settings.daily_amount = daily_amount
    settings.set_by = chosen_by
    settings.set_at = now
    audit.record(
        session,
        now=now,
        actor=actor,
        action="payments.settings",
        target_type="app",
        target_id=app.id,
        app_id=app.id,
        detail={
            "enabled": enabled,
            "daily_count": daily_count,
            "daily_amount": str(daily_amount),
            "chosen_by": chosen_by,
            "before": before,
        },
        request_id=request_id,
    )
    return settings


def _day_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    return start, start + timedelta(days=1)


async def check_limits(
    session: AsyncSession,
    cipher: Cipher,
    app: App,
    settings: PaymentSettings | None,
    *,
    count: int,
    amount: Decimal,
    currency: str,
    now: datetime,
) -> None:
    """Refuse unless payments are on for ``app`` and ``count`` more transfers of ``amount``
    in all stay within today's (UTC) limits."""
    if settings is None or not settings.enabled:
        raise DomainError(
            ErrorCode.PAYMENTS_NOT_ENABLED,
            "Payment initiation is off for this app; an owner switches it on "
            "(PUT /v2/payment/settings with a master key).",
        )
    start, end = _day_bounds(now)
    today = select(Payment).where(
        Payment.app_id == app.id, Payment.created_at >= start, Payment.created_at < end
    )
    used = (
        await session.execute(
            select(func.coalesce(func.sum(Payment.item_count), 0)).where(
                Payment.app_id == app.id, Payment.created_at >= start, Payment.created_at < end
            )
        )
    ).scalar_one()
    if int(used) + count > settings.daily_count:
        raise DomainError(
            ErrorCode.PAYMENT_LIMIT_REACHED,
            f"This app may initiate {settings.daily_count} transfers a day; {int(used)} were "
            f"initiated today and this request holds {count}.",
            {"limit": "daily_count", "allowed": settings.daily_count, "used": int(used)},
            retry_after=int((end - now).total_seconds()) + 1,
        )
    allowed = format(settings.daily_amount.normalize(), "f")
    spent = Decimal(0)
    for payment in (await session.execute(today.where(Payment.currency == currency))).scalars():
        spent += Decimal(open_payment(cipher, payment)["total"])
    if spent + amount > settings.daily_amount:
        raise DomainError(
            ErrorCode.PAYMENT_LIMIT_REACHED,
            f"This app may initiate {allowed} {currency} a day; {spent} were "
            f"initiated today and this request is for {amount}.",
            {
                "limit": "daily_amount",
                "allowed": allowed,
                "used": str(spent),
                "currency": currency,
            },
            retry_after=int((end - now).total_seconds()) + 1,
        )


# --- sealing ------------------------------------------------------------------------------


def _payment_aad(app_id: int, payment_id: str, column: str = "details") -> bytes:
    return associated_data(app_id, "payments", column, payment_id)


def _item_aad(app_id: int, payment_id: str, position: int) -> bytes:
    return associated_data(app_id, "payment_items", "details", f"{payment_id}:{position}")


def open_payment(cipher: Cipher, payment: Payment) -> dict[str, Any]:
    opened: dict[str, Any] = json.loads(
        cipher.decrypt(payment.details_enc, _payment_aad(payment.app_id, payment.id))
    )
    return opened


def open_item(cipher: Cipher, item: PaymentItem) -> dict[str, Any]:
    opened: dict[str, Any] = json.loads(
        cipher.decrypt(item.details_enc, _item_aad(item.app_id, item.payment_id, item.position))
    )
    return opened


def seal_state(cipher: Cipher, payment: Payment, state: dict[str, Any]) -> None:
    payment.connector_state_enc = cipher.encrypt(
        json.dumps(state).encode(), _payment_aad(payment.app_id, payment.id, "connector_state")
    )


def open_state(cipher: Cipher, payment: Payment) -> dict[str, Any]:
    if not payment.connector_state_enc:
        return {}
    opened: dict[str, Any] = json.loads(
        cipher.decrypt(
            payment.connector_state_enc,
            _payment_aad(payment.app_id, payment.id, "connector_state"),
        )
    )
    return opened


# --- creating -----------------------------------------------------------------------------


async def debtor_account(
    session: AsyncSession, app: App, customer: Customer, account_id: int | None, service: Service
) -> Account | None:
    """The customer's account named as the debtor, at the bank the payment goes to."""
    if account_id is None:
        return None
    found = (
        await session.execute(
            select(Account)
            .join(Login, Login.id == Account.login_id)
            .where(
                Account.app_id == app.id,
                Account.id == account_id,
                Login.customer_id == customer.id,
            )
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(
            ErrorCode.ACCOUNT_NOT_FOUND,
            f"Cannot find account with id: {account_id} of this customer.",
            {"account_id": account_id},
        )
    login = await session.get(Login, found.login_id)
    if login is None or login.service_id != service.id:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "The debtor account is held at another bank than service_id - at `$.account_id`",
            {"problems": ["the debtor account is held at another bank - at `$.account_id`"]},
        )
    return found


@dataclass(frozen=True, slots=True)
class NewPayment:
    kind: str
    customer: Customer
    service: Service
    callback_url: str
    transfers: Sequence[Transfer]
    execution_date: date | None
    account: Account | None
    debtor_iban: str | None


async def create(
    session: AsyncSession,
    *,
    clock: Clock,
    cipher: Cipher,
    token_ttl_seconds: int,
    app: App,
    new: NewPayment,
    actor: str | None = None,
) -> Payment:
    """Store a checked payment (or batch) awaiting the user's authorisation, with the connect
    token it is authorised through; its ``payment.status`` event and audit entry (by ``actor``,
    else the app)."""
    now = clock()
    currency = new.transfers[0].currency
    total = sum((t.amount for t in new.transfers), Decimal(0))
    # the app's settings row locked (PostgreSQL) until this unit of work ends: concurrent
    # payments of one app take turns at the limits instead of both passing them
    settings = await session.get(PaymentSettings, app.id, with_for_update=True)
    await check_limits(
        session,
        cipher,
        app,
        settings,
        count=len(new.transfers),
        amount=total,
        currency=currency,
        now=now,
    )
    token = await logins.create_token(
        session, clock, token_ttl_seconds, app, new.customer, new.service, new.callback_url
    )
    payment_id = str(uuid.uuid4())
    payment = Payment(
        id=payment_id,
        app_id=app.id,
        customer_id=new.customer.id,
        kind=new.kind,
        service_id=new.service.id,
        account_id=new.account.id if new.account else None,
        token_id=token.id,
        currency=currency,
        item_count=len(new.transfers),
        execution_date=new.execution_date,
        status=PaymentStatus.PENDING_AUTHORISATION,
        created_at=now,
        updated_at=now,
    )
    payment.details_enc = cipher.encrypt(
        json.dumps({"total": str(total), "debtor_iban": new.debtor_iban}).encode(),
        _payment_aad(app.id, payment_id),
    )
    session.add(payment)
    await session.flush()
    for position, transfer in enumerate(new.transfers):
        details = {
            "creditor_name": transfer.creditor_name,
            "creditor_iban": transfer.creditor_iban,
            "creditor_account": transfer.creditor_account,
            "creditor_bic": transfer.creditor_bic,
            "amount": str(transfer.amount),
            "currency": transfer.currency,
            "remittance": transfer.remittance,
        }
        session.add(
            PaymentItem(
                app_id=app.id,
                payment_id=payment_id,
                position=position,
                status=PaymentStatus.PENDING_AUTHORISATION,
                details_enc=cipher.encrypt(
                    json.dumps(details).encode(), _item_aad(app.id, payment_id, position)
                ),
            )
        )
    await _changed(session, payment, PaymentStatus.PENDING_AUTHORISATION, None, now)
    audit.record(
        session,
        now=now,
        actor=actor or audit.app_actor(app),
        action="payment.created",
        target_type="payment",
        target_id=payment_id,
        app_id=app.id,
        detail={
            "kind": new.kind,
            "customer_id": new.customer.id,
            "service_id": new.service.id,
            "transfers": len(new.transfers),
            "currency": currency,
        },
        request_id=audit.request_id(),
    )
    return payment


@dataclass(frozen=True, slots=True)
class Order:
    """A payment or batch as asked for (by a partner's API call or a member's test payment),
    its transfers already checked into ``problems``; what the rest of the checks need."""

    kind: str
    customer_id: str
    service_id: int
    callback_url: str
    account_id: int | None
    execution_date: str | None
    transfers: Sequence[Transfer]


@dataclass(frozen=True, slots=True)
class Initiation:
    """What initiating a payment needs beyond the unit of work, handed over by whoever holds
    it (the API's route and the dashboard's test payment alike).

    ``needs_debtor``: whether a connector must be told the debtor account (it cannot let the
    user choose it at the bank)."""

    clock: Clock
    cipher: Cipher
    catalogue: Catalogue
    account_details: Callable[[Account], dict[str, str | None]]
    needs_debtor: Callable[[str], bool]
    token_ttl_seconds: int
    allow_plain_http: bool


async def initiate(
    session: AsyncSession,
    wiring: Initiation,
    *,
    app: App,
    order: Order,
    problems: Problems,
    actor: str | None = None,
) -> Payment:
    """The whole of initiating: the callback, customer, bank (within the app's mode) and debtor
    account, the execution date, then every problem at once (``DataInvalid``), then the switch,
    the limits and storing (:func:`create`). The API and the dashboard's test payment both come
    here, so a test payment is checked and limited exactly as a partner's."""
    callback = logins.validate_callback_url(
        order.callback_url, allow_plain_http=wiring.allow_plain_http
    )
    customer = await customers.get_customer(session, app, order.customer_id)
    service = modes.require_allowed(app, logins.require_service(wiring.catalogue, order.service_id))
    account = await debtor_account(session, app, customer, order.account_id, service)
    if account is None and wiring.needs_debtor(service.connector):
        problems.add(
            "$.account_id",
            f"{service.name} needs the account the payment leaves from; name one of the "
            "customer's accounts there",
        )
    sepa = bool(order.transfers) and all(
        t.currency == "EUR" and t.creditor_iban is not None for t in order.transfers
    )
    when = validation.check_execution_date(
        problems, order.execution_date, wiring.clock().date(), target2=sepa
    )
    problems.raise_any()
    return await create(
        session,
        clock=wiring.clock,
        cipher=wiring.cipher,
        token_ttl_seconds=wiring.token_ttl_seconds,
        app=app,
        new=NewPayment(
            kind=order.kind,
            customer=customer,
            service=service,
            callback_url=callback,
            transfers=order.transfers,
            execution_date=when,
            account=account,
            debtor_iban=wiring.account_details(account)["iban"] if account else None,
        ),
        actor=actor,
    )


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentView:
    payment: Payment
    details: dict[str, Any]
    items: list[tuple[PaymentItem, dict[str, Any]]]
    history: list[PaymentStatusChange]


async def find(
    session: AsyncSession, app_id: int, payment_id: str, *, lock: bool = False
) -> Payment | None:
    """``lock``: the row stays locked (PostgreSQL) until the unit of work ends, so two units of
    work that both decide where a payment goes (sent to the bank, exported as a file) take
    turns and the second sees what the first decided."""
    try:
        uuid.UUID(payment_id)
    except ValueError:
        return None
    query = select(Payment).where(Payment.app_id == app_id, Payment.id == payment_id)
    if lock:
        # populate_existing: a row this unit of work read before is read again under the lock,
        # not taken from the session as it was
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def get(
    session: AsyncSession,
    app_id: int,
    payment_id: str,
    *,
    kind: str | None = None,
    lock: bool = False,
) -> Payment:
    payment = await find(session, app_id, payment_id, lock=lock)
    if payment is None or (kind is not None and payment.kind != kind):
        what = "batch" if kind == BATCH else "payment"
        raise NotFound(
            ErrorCode.PAYMENT_NOT_FOUND,
            f"Cannot find {what} with id: '{payment_id}'.",
            {"id": payment_id},
        )
    return payment


async def _items(session: AsyncSession, payment: Payment) -> Sequence[PaymentItem]:
    """A payment's transfers in the order the partner gave them."""
    found = await session.execute(
        select(PaymentItem)
        .where(PaymentItem.app_id == payment.app_id, PaymentItem.payment_id == payment.id)
        .order_by(PaymentItem.position)
    )
    return found.scalars().all()


async def view(session: AsyncSession, cipher: Cipher, payment: Payment) -> PaymentView:
    items = await _items(session, payment)
    history = (
        (
            await session.execute(
                select(PaymentStatusChange)
                .where(
                    PaymentStatusChange.app_id == payment.app_id,
                    PaymentStatusChange.payment_id == payment.id,
                )
                .order_by(PaymentStatusChange.id)
            )
        )
        .scalars()
        .all()
    )
    return PaymentView(
        payment,
        open_payment(cipher, payment),
        [(item, open_item(cipher, item)) for item in items],
        list(history),
    )


async def listed(
    session: AsyncSession,
    app_id: int,
    *,
    status: str | None,
    customer_id: str | None,
    limit: int,
    before: datetime | None,
) -> list[Payment]:
    query = select(Payment).where(Payment.app_id == app_id)
    if status is not None:
        query = query.where(Payment.status == status)
    if customer_id is not None:
        query = query.where(Payment.customer_id == customer_id)
    if before is not None:
        query = query.where(Payment.created_at < before)
    query = query.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def order_of(session: AsyncSession, cipher: Cipher, payment: Payment) -> PaymentOrder:
    """What is sent to the bank for ``payment``."""
    seen = await view(session, cipher, payment)
    transfers = tuple(
        CreditTransfer(
            end_to_end_id=end_to_end_id(payment.id, item.position),
            creditor_name=d["creditor_name"],
            amount=Decimal(d["amount"]),
            currency=d["currency"],
            creditor_iban=d["creditor_iban"],
            creditor_account=d["creditor_account"],
            creditor_bic=d["creditor_bic"],
            remittance=d["remittance"],
        )
        for item, d in seen.items
    )
    return PaymentOrder(
        request_id=payment.id,
        transfers=transfers,
        batch=payment.kind == BATCH,
        debtor_iban=seen.details.get("debtor_iban"),
        execution_date=payment.execution_date,
    )


# --- what the bank says -------------------------------------------------------------------


def status_payload(payment: Payment, now: datetime) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "kind": payment.kind,
        "customer_id": payment.customer_id,
        "status": payment.status,
        "reason": payment.status_reason,
        "timestamp": int(as_utc(now).timestamp() * 1000),
    }


async def _changed(
    session: AsyncSession,
    payment: Payment,
    status: PaymentStatus,
    reason: str | None,
    now: datetime,
) -> None:
    payment.status = status
    payment.status_reason = reason
    payment.updated_at = now
    session.add(
        PaymentStatusChange(
            app_id=payment.app_id, payment_id=payment.id, status=status, reason=reason, at=now
        )
    )
    await events.record(
        session,
        app_id=payment.app_id,
        type=PAYMENT_STATUS,
        payload=status_payload(payment, now),
        now=now,
    )


async def apply_answer(
    session: AsyncSession, payment: Payment, answer: PaymentAnswer, now: datetime
) -> bool:
    """Record the bank's answer: its payment id first, then the status (a history row and a
    ``payment.status`` event when it changed) and each transfer's. True when it changed."""
    if payment.bank_payment_id is None:
        payment.bank_payment_id = answer.bank_payment_id
    if PaymentStatus(payment.status).final:
        return False  # a final status never moves (a late answer of a cancelled payment)
    items = await _items(session, payment)
    for position, item in enumerate(items):
        status, reason = (
            answer.items[position]
            if position < len(answer.items)
            else (answer.status, answer.reason)
        )
        item.status, item.status_reason = status, reason
    if payment.status == answer.status and payment.status_reason == answer.reason:
        return False
    await _changed(session, payment, answer.status, answer.reason, now)
    return True


async def set_status(
    session: AsyncSession,
    payment: Payment,
    status: PaymentStatus,
    reason: str | None,
    now: datetime,
) -> bool:
    """A status bankhub itself decides (expired, cancelled before it reached the bank)."""
    if PaymentStatus(payment.status).final or payment.status == status:
        return False
    for item in (
        await session.execute(
            select(PaymentItem).where(
                PaymentItem.app_id == payment.app_id, PaymentItem.payment_id == payment.id
            )
        )
    ).scalars():
        item.status, item.status_reason = status, reason
    await _changed(session, payment, status, reason, now)
    return True


async def for_token(session: AsyncSession, token_id: str) -> Payment | None:
    """The payment a connect token authorises, if it is one's."""
    return (
        await session.execute(select(Payment).where(Payment.token_id == token_id))
    ).scalar_one_or_none()


def final(payment: Payment) -> bool:
    return PaymentStatus(payment.status).final


async def for_cancel_token(session: AsyncSession, token_id: str) -> Payment | None:
    """The payment whose cancellation a connect token authorises, if it is one's."""
    return (
        await session.execute(select(Payment).where(Payment.cancel_token_id == token_id))
    ).scalar_one_or_none()


async def cancellation_link(
    session: AsyncSession, clock: Clock, ttl_seconds: int, payment: Payment
) -> str:
    """A connect token with which the account holder authorises the cancellation the bank
    asked for: the payment's customer, bank and partner callback, the life of every connect
    link. It replaces one made before (whose link then no longer opens)."""
    first = await logins.find_token(session, payment.token_id)
    customer = await session.get(Customer, payment.customer_id)
    if first is None or customer is None:
        raise DomainError(ErrorCode.TOKEN_CREATE_ERROR)
    token = ConnectToken(
        id=str(uuid.uuid4()),
        app_id=payment.app_id,
        customer_id=customer.id,
        service_id=payment.service_id,
        callback_url=first.callback_url,
        created_at=clock(),
        expires_at=clock() + timedelta(seconds=ttl_seconds),
    )
    if payment.cancel_token_id is not None:
        # the link made before ends now: unlinked, it would open an account connect
        before = await logins.find_token(session, payment.cancel_token_id)
        if before is not None and as_utc(before.expires_at) > token.created_at:
            before.expires_at = token.created_at
    session.add(token)
    payment.cancel_token_id = token.id
    await session.flush()
    return token.id


async def open_cancellation_link(
    session: AsyncSession, payment: Payment, now: datetime
) -> str | None:
    """The token of the cancellation link the account holder has yet to open, while it can
    still be opened (unused, not expired, the payment not final)."""
    if payment.cancel_token_id is None or final(payment):
        return None
    token = await logins.find_token(session, payment.cancel_token_id)
    if token is None or token.used_at is not None or as_utc(token.expires_at) <= now:
        return None
    return token.id


def cancellation_detail(state: dict[str, Any]) -> dict[str, Any]:
    """What ``payment.cancelled`` says of a cancellation the account holder authorised: the
    bank's id of the authorisation (never the connect link itself, which opens the page)."""
    pis = state.get("pis")
    cancelling = isinstance(pis, dict) and bool(pis.get("cancelling"))
    pending = pis.get("pending") if cancelling and isinstance(pis, dict) else None
    authorisation = pending.get("authorisation_id") if isinstance(pending, dict) else None
    return {
        "authorised_by": "account_holder",
        "cancellation_authorisation_id": authorisation,
    }


def audit_action(
    session: AsyncSession,
    payment: Payment,
    action: str,
    *,
    actor: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session,
        now=now,
        actor=actor,
        action=action,
        target_type="payment",
        target_id=payment.id,
        app_id=payment.app_id,
        detail={"status": payment.status, **(detail or {})},
        request_id=audit.request_id(),
    )


@dataclass(frozen=True, slots=True)
class PaymentSummary:
    """What the connect page shows the user before they authorise."""

    count: int
    total: str
    currency: str
    creditor: str | None
    creditor_account: str | None
    remittance: str | None
    debtor: str | None
    execution_date: str | None


async def summary(session: AsyncSession, cipher: Cipher, payment: Payment) -> PaymentSummary:
    seen = await view(session, cipher, payment)
    first = seen.items[0][1] if len(seen.items) == 1 else None
    return PaymentSummary(
        count=payment.item_count,
        total=seen.details["total"],
        currency=payment.currency,
        creditor=first["creditor_name"] if first else None,
        creditor_account=(first["creditor_iban"] or first["creditor_account"]) if first else None,
        remittance=first["remittance"] if first else None,
        debtor=seen.details.get("debtor_iban"),
        execution_date=payment.execution_date.isoformat() if payment.execution_date else None,
    )
