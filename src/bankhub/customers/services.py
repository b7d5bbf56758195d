"""Customers of an app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account, Transaction
from bankhub.accounts.services import API_COLUMNS, TransactionView, accounts_of, opened_rows
from bankhub.clock import Clock
from bankhub.customers.models import Customer
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.events.models import Event
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.security.crypto import Cipher


async def find_by_identifier(
    session: AsyncSession, app_id: int, identifier: str
) -> Customer | None:
    query = select(Customer).where(Customer.app_id == app_id, Customer.identifier == identifier)
    return (await session.execute(query)).scalar_one_or_none()


def _exists(customer: Customer) -> DomainError:
    return DomainError(
        ErrorCode.CUSTOMER_EXISTS,
        f'Customer "{customer.identifier}" is exists',
        {"identifier": customer.identifier, "customer_id": customer.id},
    )


async def create_customer(
    session: AsyncSession, clock: Clock, app: App, identifier: str
) -> Customer:
    app_id = app.id
    existing = await find_by_identifier(session, app_id, identifier)
    if existing is not None:
        raise _exists(existing)
    customer = Customer(
        id=str(uuid.uuid4()), app_id=app_id, identifier=identifier, created_at=clock()
    )
    session.add(customer)
    try:
        await session.flush()
    except IntegrityError:
        # A concurrent request created the same identifier between our read and our write:
        # this unit of work is spoilt, so start afresh to read the winner.
        await session.rollback()
        raced = await find_by_identifier(session, app_id, identifier)
        if raced is not None:
            raise _exists(raced) from None
        raise DomainError(ErrorCode.CUSTOMER_CREATE_ERROR) from None
    except SQLAlchemyError:
        raise DomainError(ErrorCode.CUSTOMER_CREATE_ERROR) from None
    return customer


async def get_customer(session: AsyncSession, app: App, customer_id: str) -> Customer:
    try:
        uuid.UUID(customer_id)
    except ValueError:
        customer = None
    else:
        query = select(Customer).where(Customer.app_id == app.id, Customer.id == customer_id)
        customer = (await session.execute(query)).scalar_one_or_none()
    if customer is None:
        raise NotFound(
            ErrorCode.CUSTOMER_NOT_FOUND,
            f"Cannot find customer with id: '{customer_id}'.",
            {"customer_id": customer_id},
        )
    return customer


@dataclass(frozen=True, slots=True)
class LoginHoldings:
    """One login of a customer with everything stored through it, in the API's orders."""

    login: Login
    accounts: Sequence[Account]
    #: every transaction of every account, newest first (as ``GET /v2/transaction``)
    transactions: Sequence[TransactionView]
    #: the login's events, oldest first (as ``GET /v2/event``)
    events: Sequence[Event]


async def holdings_of(
    session: AsyncSession, cipher: Cipher, customer: Customer
) -> list[LoginHoldings]:
    """Everything bankhub holds about ``customer``, login by login (for an export)."""
    logins = (
        (
            await session.execute(
                select(Login)
                .where(Login.app_id == customer.app_id, Login.customer_id == customer.id)
                .order_by(Login.id)
            )
        )
        .scalars()
        .all()
    )
    held: list[LoginHoldings] = []
    for login in logins:
        accounts = await accounts_of(session, login)
        rows = (
            await session.execute(
                select(*API_COLUMNS)
                .where(
                    Transaction.app_id == login.app_id,
                    Transaction.account_id.in_([a.id for a in accounts]),
                )
                .order_by(Transaction.date.desc(), Transaction.id.desc())
            )
        ).all()
        transactions = await opened_rows(session, cipher, login.app_id, rows)
        events = (
            (
                await session.execute(
                    select(Event)
                    .where(Event.app_id == login.app_id, Event.login_id == login.id)
                    .order_by(Event.id)
                )
            )
            .scalars()
            .all()
        )
        held.append(LoginHoldings(login, accounts, transactions, events))
    return held
