"""Reading accounts and transactions, always scoped to the authenticated app and login."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account, Transaction
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.logins.models import Login


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
) -> Sequence[Transaction]:
    """Newest first; ``limit`` rows from ``offset``."""
    query = select(Transaction).where(
        Transaction.app_id == login.app_id, Transaction.account_id.in_(account_ids)
    )
    if from_date is not None:
        query = query.where(Transaction.date >= from_date)
    if to_date is not None:
        query = query.where(Transaction.date <= to_date)
    query = (
        query.order_by(Transaction.date.desc(), Transaction.id.desc()).offset(offset).limit(limit)
    )
    return (await session.execute(query)).scalars().all()
