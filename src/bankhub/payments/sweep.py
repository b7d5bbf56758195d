"""The payments sweep: ask the banks about payments bankhub is not sure of, and expire the
ones nobody authorised.

Three kinds of payment are looked at, in every runner (``bankhub serve``, ``bankhub worker``):

* sent and never answered (``sent_at`` without ``bank_payment_id``, older than a bank call
  can take): the process died between sending and recording. The bank is asked what it made
  of bankhub's request id; the order is never sent again (:mod:`bankhub.payments.sending`);
* taken by the bank but not final (``authorised``, ``accepted``, or waiting at the bank for
  an authorisation): the bank is asked for the status, so an execution or a cancellation by
  the bank reaches the partner as a ``payment.status`` event;
* never sent and older than the connect link: the user never authorised; it expires. One the
  bank still waits to see authorised that long after it was sent is cancelled at the bank
  (so that it can never execute later) and expires too.

Several runners may ask about the same payment at once: the bank is only read, and recording
is idempotent (a status that did not change records nothing).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from bankhub.catalogue import Catalogue
from bankhub.clock import Clock, as_utc
from bankhub.connectors.base import ConnectorFailure, PaymentStatus
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.payments import services
from bankhub.payments.models import BATCH, Payment
from bankhub.payments.sending import ask_bank, payments_of, record_reconciled
from bankhub.security.crypto import Cipher
from bankhub.sync.engine import SyncEngine

log = logging.getLogger("bankhub.payments")

#: statuses the bank may still move
OPEN = (PaymentStatus.PENDING_AUTHORISATION, PaymentStatus.AUTHORISED, PaymentStatus.ACCEPTED)
BATCH_SIZE = 100


class PaymentSweep:
    name = "payments sweep"
    first = False

    def __init__(
        self,
        db: Database,
        clock: Clock,
        cipher: Cipher,
        engine: SyncEngine,
        catalogue: Catalogue,
        *,
        every: float,
        grace: timedelta,
        unauthorised_after: timedelta,
    ) -> None:
        self.db = db
        self.clock = clock
        self.cipher = cipher
        self.engine = engine
        self.catalogue = catalogue
        self.every = every
        #: how long a bank call may take: a payment sent less long ago may still be answered
        self.grace = grace
        #: a payment never sent after this long was not authorised (the connect link's life
        #: and the connect page's idle time)
        self.unauthorised_after = unauthorised_after

    async def sweep(self) -> int:
        """Ask, expire and record; how many payments changed status."""
        now = self.clock()
        changed = 0
        with tenancy.everything():
            async with self.db.transaction(write=True) as session:
                stale = (
                    await session.execute(
                        select(Payment)
                        .where(
                            Payment.status == PaymentStatus.PENDING_AUTHORISATION,
                            Payment.sent_at.is_(None),
                            Payment.created_at < now - self.unauthorised_after,
                        )
                        # locked: one exported or sent meanwhile is seen so, never expired
                        .with_for_update()
                    )
                ).scalars()
                for payment in stale:
                    changed += await services.set_status(
                        session,
                        payment,
                        PaymentStatus.EXPIRED,
                        "The payment was not authorised in time",
                        now,
                    )
            async with self.db.transaction() as session:
                due = list(
                    (
                        await session.execute(
                            select(Payment)
                            .where(
                                Payment.status.in_(OPEN),
                                Payment.sent_at.is_not(None),
                                or_(
                                    Payment.bank_payment_id.is_not(None),
                                    and_(
                                        Payment.bank_payment_id.is_(None),
                                        Payment.sent_at < now - self.grace,
                                    ),
                                ),
                            )
                            .order_by(Payment.updated_at)
                            .limit(BATCH_SIZE)
                        )
                    ).scalars()
                )
                states = {p.id: services.open_state(self.cipher, p) for p in due}
            for payment in due:
                changed += await self._ask(payment, states[payment.id], now)
        return changed

    async def _ask(self, payment: Payment, state: dict[str, object], now: datetime) -> int:
        service = self.catalogue.get(payment.service_id)
        if service is None:
            return 0
        if payment.bank_payment_id is None:
            log.warning(
                "payment %s was sent at %s and never answered: asking the bank",
                payment.id,
                as_utc(payment.sent_at).isoformat() if payment.sent_at else "?",
            )
        run = self.engine.build(service, state)
        abandoned = False
        try:
            bank = payments_of(run.connector, batch=payment.kind == BATCH)
            answer = await self.engine.guarded(ask_bank(bank, payment))
            if (
                answer is not None
                and answer.status == PaymentStatus.PENDING_AUTHORISATION
                and payment.sent_at is not None
                and as_utc(payment.sent_at) < now - self.unauthorised_after
            ):
                # the user left the bank's authorisation step long ago: withdrawn at the bank
                # so that it can never execute later, and expired here
                answer = await self.engine.guarded(bank.cancel_payment(answer.bank_payment_id))
                abandoned = answer.status in (
                    PaymentStatus.CANCELLED,
                    PaymentStatus.PENDING_AUTHORISATION,
                )
        except ConnectorFailure as failure:
            log.info("the bank of payment %s did not answer: %s", payment.id, failure.message)
            return 0
        async with self.db.transaction(write=True) as session:
            await tenancy.enter(session, payment.app_id)
            fresh = await services.find(session, payment.app_id, payment.id)
            if fresh is None:
                return 0
            if abandoned and answer is not None:
                if fresh.bank_payment_id is None:
                    fresh.bank_payment_id = answer.bank_payment_id
                return int(
                    await services.set_status(
                        session,
                        fresh,
                        PaymentStatus.EXPIRED,
                        "The payment was not authorised at the bank in time",
                        self.clock(),
                    )
                )
            moved = await record_reconciled(session, fresh, answer, self.clock)
            held = run.state.load()
            if (
                moved
                and fresh.status == PaymentStatus.CANCELLED
                and fresh.cancel_token_id is not None
                and services.cancellation_detail(held)["cancellation_authorisation_id"]
            ):
                # a cancellation the account holder authorised after leaving the connect page
                # (an approval in the bank's app): the poll is what learnt it
                services.seal_state(self.cipher, fresh, held)
                services.audit_action(
                    session,
                    fresh,
                    "payment.cancelled",
                    actor="system:payments-sweep",
                    now=self.clock(),
                    detail=services.cancellation_detail(held),
                )
            return int(moved)
