"""Reading accounts and transactions, always scoped to the authenticated app and login."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account, Transaction
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.logins.models import Login

#: the fields ``/v2/transaction`` shows
API_COLUMNS = (
    Transaction.id,
    Transaction.original_id,
    Transaction.date,
    Transaction.amount,
    Transaction.currency,
    Transaction.description,
    Transaction.category,
    Transaction.meta,
)


class TransactionFields(Protocol):
    """What ``/v2/transaction`` shows of a transaction: an ORM object or a plain row."""

    id: int
    original_id: str
    date: date
    amount: Decimal
    currency: str
    description: str
    category: str
    meta: dict[str, Any] | None


async def accounts_of(session: AsyncSession, login: Login) -> Sequence[Account]:
    query = (
        select(Account)
        .where(Account.app_id == login.app_id, Account.login_id == login.id)
        .order_by(Account.id)
    )
    return (await session.execute(query)).scalars().all()


async def account_of(session: AsyncSession, login: Login, account_id: int) -> Account:
    query = select(Account).where(
        Account.app_id == login.app_id, Account.login_id == login.id, Account.id == account_id
    )
    account = (await session.execute(query)).scalar_one_or_none()
    if account is None:
        raise ApiError(
            ErrorCode.ACCOUNT_NOT_FOUND,
            f"Cannot find account with id: {account_id}.",
            {"account_id": account_id},
        )
    return account


async def transactions_of(
    session: AsyncSession,
    login: Login,
    account_ids: Sequence[int],
    from_date: date | None,
    to_date: date | None,
    offset: int,
    limit: int,
) -> Sequence[Row[Any]]:
    """Newest first; ``limit`` rows from ``offset``, as plain rows of the API's fields.

    Plain rows, not ORM objects: this is the hottest read, and building an ORM object per row
    cost more than the query itself (bench/read.py).
    """
    query = select(*API_COLUMNS).where(
        Transaction.app_id == login.app_id, Transaction.account_id.in_(account_ids)
    )
    if from_date is not None:
        query = query.where(Transaction.date >= from_date)
    if to_date is not None:
        query = query.where(Transaction.date <= to_date)
    query = (
        query.order_by(Transaction.date.desc(), Transaction.id.desc()).offset(offset).limit(limit)
    )
    return (await session.execute(query)).all()
