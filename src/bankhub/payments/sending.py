"""Sending a payment to its bank exactly once, and asking the bank about it afterwards.

The order of things is what makes "exactly once" hold across crashes:

1. ``sent_at`` is committed before the bank is called, in a transaction of its own: from then
   on a restart knows the order may have reached the bank;
2. the bank is called with bankhub's payment id as its idempotency reference (the request id),
   so asking it twice never makes two payments;
3. the bank's payment id is committed in a transaction of its own before anything else its
   answer says is acted on (the status, the user's next step);
4. a payment left "sent, not answered" (``sent_at`` without ``bank_payment_id``) is reconciled
   by asking the bank what it made of the request id (:func:`reconcile`), never by sending again.

``BANKHUB_FAULT_POINT=payment-sent`` kills the process group between 2 and 3, for the crash
test (tests/scale/test_payment_crash.py).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import Clock
from bankhub.connectors.base import (
    Answer,
    BulkPaymentsCapability,
    CancellationAuthorisationCapability,
    ConnectorFailure,
    MemoryStateStore,
    PaymentAnswer,
    PaymentOrder,
    PaymentsCapability,
    PaymentStatus,
)
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.errors import ErrorCode
from bankhub.payments import services
from bankhub.payments.models import BATCH, Payment
from bankhub.security.crypto import Cipher

log = logging.getLogger("bankhub.payments")

#: the environment variable a crash test sets to kill the process at a named point
FAULT_ENV = "BANKHUB_FAULT_POINT"
SENT_NOT_RECORDED = "payment-sent"


def _fault(point: str) -> None:
    """A crash test's kill -9 of the whole ``bankhub serve`` (its process group, which the
    test starts as a session of its own) at ``point``."""
    if os.environ.get(FAULT_ENV) == point:
        log.warning("fault point %s reached: the process group kills itself", point)
        os.killpg(os.getpgrp(), signal.SIGKILL)


class NoPayments(ConnectorFailure):
    """This bank's connector cannot initiate payments."""

    status = "provider_unavailable"


def payments_of(connector: object, *, batch: bool) -> PaymentsCapability:
    if batch and isinstance(connector, BulkPaymentsCapability):
        return connector
    if not batch and isinstance(connector, PaymentsCapability):
        return connector
    what = "batches of payments" if batch else "payments"
    raise NoPayments(f"This bank cannot take {what} through bankhub yet")


@dataclass
class PaymentAuthorisation:
    """One payment's way through its bank while the user is on the connect page."""

    db: Database
    cipher: Cipher
    clock: Clock
    app_id: int
    payment_id: str
    status: PaymentStatus = PaymentStatus.PENDING_AUTHORISATION
    reason: str | None = None
    bank_payment_id: str | None = None
    #: the account holder authorises the cancellation the bank asked for, not the payment
    cancelling: bool = False
    #: the cancellation's authorisation was started at the bank in this session
    cancellation_started: bool = False

    async def _load(self, session: AsyncSession) -> Payment:
        await tenancy.enter(session, self.app_id)
        return await services.get(session, self.app_id, self.payment_id, lock=True)

    async def send(self, connector: object, state: MemoryStateStore) -> None:
        """Send the order (once), record the bank's id, then raise the bank's authorisation
        step if it asks one."""
        order: PaymentOrder | None = None
        async with self.db.transaction(write=True) as session:
            payment = await self._load(session)
            self._keep(payment)
            batch = payment.kind == BATCH
            sent_before = payment.sent_at is not None
            if payment.status == PaymentStatus.PENDING_AUTHORISATION:
                order = await services.order_of(session, self.cipher, payment)
                if not sent_before:
                    payment.sent_at = self.clock()
                services.seal_state(self.cipher, payment, state.load())
        if order is None:
            return  # ended before it was sent (expired, cancelled): nothing to send
        bank = payments_of(connector, batch=batch)
        answer = None
        if sent_before:
            # sent before (a second submit, a restart): ask the bank, never send again
            answer = await bank.find_payment(self.payment_id)
        if answer is None:
            if isinstance(bank, BulkPaymentsCapability) and batch:
                answer = await bank.initiate_bulk_payment(order)
            else:
                answer = await bank.initiate_payment(order)
        _fault(SENT_NOT_RECORDED)
        await self.record(answer, state)
        if answer.sca is not None:
            raise answer.sca

    async def authorise(self, connector: object, state: MemoryStateStore, answer: Answer) -> None:
        """The user's answer to the bank's authorisation step."""
        if self.bank_payment_id is None:
            raise ConnectorFailure("The payment has not reached the bank")
        bank = payments_of(connector, batch=False)
        result = await bank.authorise_payment(self.bank_payment_id, answer)
        await self.record(result, state)
        if result.sca is not None:
            raise result.sca

    async def start_cancellation(self, connector: object, state: MemoryStateStore) -> None:
        """The account holder is logged in: start the cancellation's authorisation at the
        bank, and raise its step."""
        async with self.db.transaction(write=True) as session:
            self._keep(await self._load(session))
        if self.bank_payment_id is None or self.status.final:
            return  # final meanwhile (the bank executed or cancelled it): nothing to authorise
        if not isinstance(connector, CancellationAuthorisationCapability):
            raise NoPayments("This bank cannot have a cancellation authorised through bankhub")
        answer = await connector.authorise_cancellation(self.bank_payment_id)
        self.cancellation_started = True
        await self.record(answer, state)
        if answer.sca is not None:
            raise answer.sca

    async def record(self, answer: PaymentAnswer, state: MemoryStateStore | None = None) -> None:
        """The bank's payment id first, in its own transaction; then what the answer says (and,
        for a cancellation the account holder authorised, its audit entry)."""
        async with self.db.transaction(write=True) as session:
            payment = await self._load(session)
            if payment.bank_payment_id is None:
                payment.bank_payment_id = answer.bank_payment_id
        async with self.db.transaction(write=True) as session:
            payment = await self._load(session)
            if state is not None:
                services.seal_state(self.cipher, payment, state.load())
            moved = await services.apply_answer(session, payment, answer, self.clock())
            if moved and self.cancelling and payment.status == PaymentStatus.CANCELLED:
                services.audit_action(
                    session,
                    payment,
                    "payment.cancelled",
                    actor=f"customer:{payment.customer_id}",
                    now=self.clock(),
                    detail=services.cancellation_detail(services.open_state(self.cipher, payment)),
                )
            self._keep(payment)

    async def cancelled_by_user(self) -> None:
        """The user left the connect page without authorising: the payment is cancelled
        here; one that reached the bank is left to the bank's own expiry and status polls."""
        async with self.db.transaction(write=True) as session:
            payment = await self._load(session)
            if payment.bank_payment_id is None and payment.sent_at is None:
                await services.set_status(
                    session,
                    payment,
                    PaymentStatus.CANCELLED,
                    "The user cancelled on the connect page",
                    self.clock(),
                )
            self._keep(payment)

    def _keep(self, payment: Payment) -> None:
        self.status = PaymentStatus(payment.status)
        self.reason = payment.status_reason
        self.bank_payment_id = payment.bank_payment_id

    def outcome(self) -> dict[str, Any]:
        """The partner's callback once the flow ends: success for a payment the bank took
        (authorised, accepted or executed), else the seed's failure form with the reason. For
        a cancellation: success once the bank cancelled it, else ``PaymentNotCancellable``."""
        if self.cancelling:
            if self.status == PaymentStatus.CANCELLED:
                return {"status": "success", "payment_id": self.payment_id}
            return {
                "status": "error",
                "error": str(ErrorCode.PAYMENT_NOT_CANCELLABLE),
                "message": f"The bank did not cancel the payment; it is {self.status}",
                "payment_id": self.payment_id,
            }
        return outcome_of(self.payment_id, self.status, self.reason)


def outcome_of(payment_id: str, status: PaymentStatus, reason: str | None) -> dict[str, Any]:
    """The partner's callback for a payment in ``status`` (see
    :meth:`PaymentAuthorisation.outcome`)."""
    if status in (PaymentStatus.AUTHORISED, PaymentStatus.ACCEPTED, PaymentStatus.EXECUTED):
        return {"status": "success", "payment_id": payment_id}
    if status == PaymentStatus.CANCELLED:
        return {"status": "cancelled", "payment_id": payment_id}
    return {
        "status": "error",
        "error": f"payment_{status}",
        "message": reason or f"The payment is {status}",
        "payment_id": payment_id,
    }


async def ask_bank(bank: PaymentsCapability, payment: Payment) -> PaymentAnswer | None:
    """What the bank says of ``payment`` now: by its id when known, else by bankhub's request
    id (a payment sent and never answered); ``None`` when the order never reached the bank.
    Called outside any transaction."""
    if payment.bank_payment_id is not None:
        return await bank.payment_status(payment.bank_payment_id)
    return await bank.find_payment(payment.id)


async def record_reconciled(
    session: AsyncSession, payment: Payment, answer: PaymentAnswer | None, clock: Clock
) -> bool:
    """Record what :func:`ask_bank` learnt; True when the status moved. A payment the bank
    never received is not sent again: nobody is there to authorise it, so it expires (the
    partner may start a new one)."""
    now = clock()
    if answer is None:
        return await services.set_status(
            session,
            payment,
            PaymentStatus.EXPIRED,
            "The order never reached the bank; nothing was paid",
            now,
        )
    return await services.apply_answer(session, payment, answer, now)


def link_ending(
    payment_id: str,
    status: PaymentStatus,
    cancelling: bool,
    translate: Callable[[str], str] = str,
) -> tuple[dict[str, Any], str, str] | None:
    """What the connect link of a payment (or of its cancellation) that can no longer be used
    says, instead of "expired": the callback's payload, the heading and the message (which may
    name ``{app}`` and ``{bank}``); ``None``: nothing better to say than that. Its status only,
    which the partner's callback carries too: never the bank's reason, the creditor or the
    amount. ``translate`` puts the page's words in the end user's language (``gettext``)."""
    _ = translate
    if status == PaymentStatus.EXPORTED:
        return (
            {
                "status": "error",
                "error": f"payment_{status}",
                "message": "The payment was handed out as a file for the bank",
                "payment_id": payment_id,
            },
            _("This payment was handed to your bank as a file"),
            _(
                "{app} gave this payment to you as a file to upload to your online banking at "
                "{bank}, so there is nothing to approve here. Return to {app} to see where it "
                "stands."
            ),
        )
    if not status.final and not cancelling and status != PaymentStatus.PENDING_AUTHORISATION:
        return (
            outcome_of(payment_id, status, None),
            _("This payment was sent to your bank already"),
            _("There is nothing left to approve here. Return to {app} to see where it stands."),
        )
    if not status.final:
        return None
    if cancelling:
        outcome: dict[str, Any] = (
            {"status": "success", "payment_id": payment_id}
            if status == PaymentStatus.CANCELLED
            else {
                "status": "error",
                "error": str(ErrorCode.PAYMENT_NOT_CANCELLABLE),
                "message": f"The payment is {status}",
                "payment_id": payment_id,
            }
        )
    else:
        outcome = outcome_of(payment_id, status, None)
    return (
        outcome,
        _("This payment is already {status}").format(status=status),
        _("There is nothing left to do here. Return to {app} to see where it stands."),
    )
