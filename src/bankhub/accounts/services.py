"""Reading accounts and transactions, always scoped to the authenticated app and login."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Row, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account, Transaction
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.security.secrets import SecretHasher

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


def account_not_found(account_id: int) -> ApiError:
    return ApiError(
        ErrorCode.ACCOUNT_NOT_FOUND,
        f"Cannot find account with id: {account_id}.",
        {"account_id": account_id},
    )


async def account_of(session: AsyncSession, login: Login, account_id: int) -> Account:
    query = select(Account).where(
        Account.app_id == login.app_id, Account.login_id == login.id, Account.id == account_id
    )
    account = (await session.execute(query)).scalar_one_or_none()
    if account is None:
        raise account_not_found(account_id)
    return account


#: a login by its secret and one of its accounts by id, in one statement (the read path)
_LOGIN_WITH_ACCOUNT = (
    select(Login, Account)
    .outerjoin(
        Account,
        and_(
            Account.app_id == Login.app_id,
            Account.login_id == Login.id,
            Account.id == bindparam("account_id"),
        ),
    )
    .where(Login.app_id == bindparam("app_id"), Login.secret_hash == bindparam("digest"))
)


async def login_with_account(
    session: AsyncSession, hasher: SecretHasher, app: App, secret: str | None, account_id: int
) -> tuple[Login, Account | None]:
    """``logins.login_by_secret`` and the account ``account_id`` of that login (None when the
    login has no such account) in one round trip; the same errors for the login."""
    secret = logins.required_secret(secret)
    found = await session.execute(
        _LOGIN_WITH_ACCOUNT,
        {
            "app_id": app.id,
            "digest": logins.secret_digest(hasher, secret),
            "account_id": account_id,
        },
    )
    row = found.one_or_none()
    if row is None:
        raise logins.login_not_found(secret)
    return row[0], row[1]


def _transactions_query(since: bool, until: bool) -> Any:
    query = select(*API_COLUMNS).where(
        Transaction.app_id == bindparam("app_id"),
        Transaction.account_id.in_(bindparam("account_ids", expanding=True)),
    )
    if since:
        query = query.where(Transaction.date >= bindparam("from_date"))
    if until:
        query = query.where(Transaction.date <= bindparam("to_date"))
    return (
        query.order_by(Transaction.date.desc(), Transaction.id.desc())
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


#: ``transactions_of``'s statements, built once, by (from_date given, to_date given)
_TRANSACTIONS = {
    (since, until): _transactions_query(since, until)
    for since in (False, True)
    for until in (False, True)
}


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

    Plain rows, not ORM objects, and statements built once: this is the hottest read, and
    building an ORM object per row cost more than the query itself (bench/read.py).
    """
    query = _TRANSACTIONS[from_date is not None, to_date is not None]
    values: dict[str, Any] = {
        "app_id": login.app_id,
        "account_ids": list(account_ids),
        "offset": offset,
        "limit": limit,
    }
    if from_date is not None:
        values["from_date"] = from_date
    if to_date is not None:
        values["to_date"] = to_date
    return (await session.execute(query, values)).all()
