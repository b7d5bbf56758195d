"""Erasing a login or a whole customer, with everything fetched through them.

An erasure is two steps around the caller's units of work: the consent is withdrawn at the bank
first, outside any transaction and best effort (a bank that cannot be reached never blocks an
erasure), then the rows go in one unit of work. Deleting a login cascades (foreign keys) to its
accounts, transactions, change log, sync runs and connect tokens; its events are deleted here,
which cascades to their webhook deliveries and attempts. Each erased login leaves one
``login.deleted`` event, whose payload carries the login id only.

Deleted is not yet gone from the files: the caller runs :func:`scrub` after the commit and
before answering, so that nothing of the erased rows is readable in the database's files when
the answer leaves (docs/security.md, "Erasure", says what that means on each database).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account, Transaction
from bankhub.catalogue import Catalogue
from bankhub.customers.models import Customer
from bankhub.db.engine import Database, Scrubbed
from bankhub.db.models import Base
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.logins.models import Login
from bankhub.security import idempotency
from bankhub.sync.engine import SyncEngine

log = logging.getLogger(__name__)


def _erased_tables() -> tuple[str, ...]:
    """Every table an erasure deletes from or rewrites: customers, logins, events and the
    idempotency store, and every table that hangs off them by a foreign key (found from the
    schema, so a new one is covered without a change here)."""
    tables = Base.metadata.tables
    found = {"customers", "logins", "events", "idempotency_keys"}
    while True:
        more = {
            name
            for name, table in tables.items()
            for key in table.foreign_keys
            if key.column.table.name in found
        }
        if more <= found:
            return tuple(sorted(found))
        found |= more


#: the tables :func:`scrub` cleans after an erasure
ERASED_TABLES = _erased_tables()


async def scrub(db: Database) -> Scrubbed:
    """After the erasure's commit: nothing of the erased rows left readable in the files."""
    return await db.scrub(ERASED_TABLES)


@dataclass(frozen=True, slots=True)
class Upstream:
    """What withdrawing a login's consent at the bank needs, read before the login is gone."""

    login_id: int
    service_id: int
    #: a detached copy of the login, enough to open its (encrypted) connector state later
    login: Login


def upstream_of(login: Login) -> Upstream:
    copy = Login(
        id=login.id,
        app_id=login.app_id,
        service_id=login.service_id,
        connector_state=dict(login.connector_state or {}),
        connector_state_enc=login.connector_state_enc,
    )
    return Upstream(login.id, login.service_id, copy)


async def withdraw_consents(
    engine: SyncEngine, catalogue: Catalogue, upstreams: Iterable[Upstream]
) -> int:
    """Withdraw each login's consent where its connector can; how many banks confirmed.

    Call it outside any unit of work: banks are slow. Never raises.
    """
    withdrawn = 0
    for upstream in upstreams:
        service = catalogue.get(upstream.service_id)
        if service is None:
            continue
        try:
            if await engine.revoke(service, engine.state_of(upstream.login)):
                withdrawn += 1
        except Exception as exc:  # noqa: BLE001 - a failing bank never blocks an erasure
            log.warning(
                "withdrawing the consent of login %s failed: %s",
                upstream.login_id,
                type(exc).__name__,
            )
    return withdrawn


@dataclass(slots=True)
class Erased:
    """What an erasure removed, in counts only: safe to keep in the audit log."""

    logins: int = 0
    accounts: int = 0
    transactions: int = 0
    events: int = 0
    #: logins that were not known when the consents were withdrawn (created meanwhile)
    late: list[Upstream] = field(default_factory=list)

    def detail(self, **more: int) -> dict[str, int]:
        return {
            "logins": self.logins,
            "accounts": self.accounts,
            "transactions": self.transactions,
            "events": self.events,
            **more,
        }


async def erase_logins(
    session: AsyncSession,
    *,
    app_id: int,
    login_ids: Sequence[int],
    now: datetime,
    withdrawn: Iterable[int] = (),
) -> Erased:
    """Delete the app's logins among ``login_ids`` and all their data, in the caller's unit of
    work, and record a ``login.deleted`` event for each. ``withdrawn``: the logins whose consent
    was already withdrawn; any other is returned in ``late`` for the caller to withdraw."""
    erased = Erased()
    if not login_ids:
        return erased
    # Locked up front, in ascending order of id, as every writer of several logins takes them
    # (``db.group``): the deletes below would lock them in whatever order their plan reads the
    # rows, and meet a refresh batch holding some of them in a deadlock (PostgreSQL).
    rows = (
        (
            await session.execute(
                select(Login)
                .where(Login.app_id == app_id, Login.id.in_(login_ids))
                .order_by(Login.id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    ids = [login.id for login in rows]
    if not ids:
        return erased
    known = set(withdrawn)
    erased.late = [upstream_of(login) for login in rows if login.id not in known]
    erased.logins = len(ids)
    erased.accounts = await _count(
        session, select(func.count(Account.id)).where(Account.login_id.in_(ids))
    )
    erased.transactions = await _count(
        session,
        select(func.count(Transaction.id))
        .join(Account, Account.id == Transaction.account_id)
        .where(Account.login_id.in_(ids)),
    )
    erased.events = await _count(
        session,
        select(func.count(Event.id)).where(Event.app_id == app_id, Event.login_id.in_(ids)),
    )
    await session.execute(delete(Event).where(Event.app_id == app_id, Event.login_id.in_(ids)))
    await session.execute(delete(Login).where(Login.app_id == app_id, Login.id.in_(ids)))
    # Stored answers to Idempotency-Keys may describe them (S40): erased with them.
    await idempotency.erase_stored(session, app_id)
    for login_id in ids:
        await events.record(
            session,
            app_id=app_id,
            login_id=None,
            type=events.LOGIN_DELETED,
            payload=events.login_deleted_payload(login_id),
            now=now,
        )
    return erased


async def customer_logins(session: AsyncSession, app_id: int, customer_id: str) -> list[Login]:
    query = (
        select(Login)
        .where(Login.app_id == app_id, Login.customer_id == customer_id)
        .order_by(Login.id)
    )
    return list((await session.execute(query)).scalars().all())


async def erase_customer(
    session: AsyncSession,
    *,
    app_id: int,
    customer_id: str,
    now: datetime,
    withdrawn: Iterable[int] = (),
) -> Erased | None:
    """Delete the app's customer, every login of theirs with all its data, and their connect
    tokens, in the caller's unit of work; ``None`` when there is no such customer (any more)."""
    login_ids = [login.id for login in await customer_logins(session, app_id, customer_id)]
    erased = await erase_logins(
        session, app_id=app_id, login_ids=login_ids, now=now, withdrawn=withdrawn
    )
    # A payment's events name the customer, not a login: erased with the customer (their
    # payments and transfers go with the customer's row, by its foreign keys).
    await session.execute(
        delete(Event).where(
            Event.app_id == app_id,
            Event.type == events.PAYMENT_STATUS,
            Event.payload["customer_id"].as_string() == customer_id,
        )
    )
    gone = await session.execute(
        delete(Customer)
        .where(Customer.app_id == app_id, Customer.id == customer_id)
        .returning(Customer.id)
    )
    if gone.scalar_one_or_none() is None:
        return None
    await idempotency.erase_stored(session, app_id)
    return erased


async def _count(session: AsyncSession, query: Any) -> int:
    return int((await session.execute(query)).scalar_one())
