"""Reading accounts and transactions, always scoped to the authenticated app and login."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Row, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bankhub.accounts import details
from bankhub.accounts.models import Account, Transaction
from bankhub.connectors.base import TransactionStatus
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.security.authcache import AuthCache, LoginView, Ticket
from bankhub.security.crypto import Cipher
from bankhub.security.secrets import SecretHasher

PENDING = TransactionStatus.PENDING.value

#: what ``/v2/transaction`` reads of a row: the plain columns it shows or needs, and the sealed
#: details (opened by :func:`opened_rows`)
API_COLUMNS = (
    Transaction.id,
    Transaction.account_id,
    Transaction.dedupe_key,
    Transaction.date,
    Transaction.amount,
    Transaction.currency,
    Transaction.category,
    Transaction.status,
    Transaction.pending_transaction_id,
    Transaction.details_enc,
)


class TransactionView(msgspec.Struct, frozen=True):
    """A transaction as the API shows it, its details opened."""

    id: int
    original_id: str
    date: date
    amount: Decimal
    currency: str
    description: str
    category: str
    meta: dict[str, Any] | None
    status: str
    pending_transaction_id: int | None


async def opened_rows(
    session: AsyncSession, cipher: Cipher, app_id: int, rows: Sequence[Row[Any]]
) -> list[TransactionView]:
    """Rows of :data:`API_COLUMNS` with their details opened. A row stored before details were
    sealed is read from its plain columns (one more query for all such rows of the page) and
    masked on the way out."""
    plain: dict[int, Any] = {}
    missing = [row[0] for row in rows if row[-1] is None]
    if missing:
        found = await session.execute(
            select(*details.PLAIN_COLUMNS).where(Transaction.id.in_(missing))
        )
        plain = {row.id: row for row in found}
    # The hottest loop of the read path: rows unpacked as tuples (an attribute of a row costs
    # more than the tuple), the associated data (``details.aad``) made inline.
    prefix = f"{app_id}|{details.TABLE}|{details.COLUMN}|"
    decrypt, decode = cipher.decrypt, details.decode
    views: list[TransactionView] = []
    append = views.append
    for (
        row_id,
        account_id,
        dedupe_key,
        day,
        amount,
        currency,
        category,
        status,
        pending_id,
        sealed,
    ) in rows:
        if sealed is not None:
            fields = decode(decrypt(sealed, f"{prefix}{account_id}:{dedupe_key}".encode()))
        else:
            fields = details.opened(cipher, plain[row_id])
        append(
            TransactionView(
                row_id,
                fields.original_id,
                day,
                amount,
                currency,
                fields.description,
                category,
                fields.meta,
                status,
                pending_id,
            )
        )
    return views


#: a login as the data reads take it: its row, or the plain values the cache keeps
LoginRef = Login | LoginView


#: what ``GET /v2/account`` reads of an account (``schemas.account_row_out``), in this order
ACCOUNT_COLUMNS = (
    Account.id,
    Account.app_id,
    Account.login_id,
    Account.name,
    Account.balance,
    Account.currency,
    Account.type,
    Account.bank_id_enc,
    Account.bank_id,
)
_ACCOUNT_ROWS = (
    select(*ACCOUNT_COLUMNS)
    .where(Account.app_id == bindparam("app_id"), Account.login_id == bindparam("login_id"))
    .order_by(Account.id)
)


async def account_rows(session: AsyncSession, login: LoginRef) -> Sequence[Row[Any]]:
    """The login's accounts as plain rows of :data:`ACCOUNT_COLUMNS`, by id: no ORM objects
    (each cost more than its row's share of the query), a statement built once."""
    values = {"app_id": login.app_id, "login_id": login.id}
    return (await (await _core(session)).execute(_ACCOUNT_ROWS, values)).all()


async def accounts_of(session: AsyncSession, login: LoginRef) -> Sequence[Account]:
    query = (
        select(Account)
        .where(Account.app_id == login.app_id, Account.login_id == login.id)
        .order_by(Account.id)
    )
    return (await session.execute(query)).scalars().all()


def account_not_found(account_id: int) -> DomainError:
    return NotFound(
        ErrorCode.ACCOUNT_NOT_FOUND,
        f"Cannot find account with id: {account_id}.",
        {"account_id": account_id},
    )


async def account_of(session: AsyncSession, login: LoginRef, account_id: int) -> Account:
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


async def login_view_with_account(
    session: AsyncSession,
    hasher: SecretHasher,
    app_id: int,
    secret: str | None,
    account_id: int,
    *,
    cache: AuthCache | None = None,
    ticket: Ticket | None = None,
) -> tuple[LoginView, Account | None]:
    """The login a login-secret names (as plain values, from ``cache`` when it holds it) and
    its account ``account_id`` (None when the login has no such account): one statement for
    both when the login is not cached, only the account's when it is. The errors of
    ``logins.login_view_by_secret``, before anything about the account."""
    secret = logins.required_secret(secret)
    digest = logins.secret_digest(hasher, secret)
    if cache is not None and (hit := cache.login(ticket, (app_id, digest))) is not None:
        query = select(Account).where(
            Account.app_id == hit.app_id, Account.login_id == hit.id, Account.id == account_id
        )
        return hit, (await session.execute(query)).scalar_one_or_none()
    found = await session.execute(
        _LOGIN_WITH_ACCOUNT, {"app_id": app_id, "digest": digest, "account_id": account_id}
    )
    row = found.one_or_none()
    if row is None:
        raise logins.login_not_found(secret)
    view = logins.login_view(row[0])
    if cache is not None:
        cache.keep_login(ticket, (app_id, digest), view)
    return view, row[1]


def _transactions_query(since: bool, until: bool, after: bool = False) -> Any:
    query = select(*API_COLUMNS).where(
        Transaction.app_id == bindparam("app_id"),
        Transaction.account_id.in_(bindparam("account_ids", expanding=True)),
    )
    if since:
        query = query.where(Transaction.date >= bindparam("from_date"))
    if until:
        query = query.where(Transaction.date <= bindparam("to_date"))
    if after:
        # keyset: the rows after the last one given, in the order below
        query = query.where(
            Transaction.date <= bindparam("after_date"),
            or_(
                Transaction.date < bindparam("after_date"),
                Transaction.id < bindparam("after_id"),
            ),
        )
    query = query.order_by(Transaction.date.desc(), Transaction.id.desc())
    if not after:
        query = query.offset(bindparam("offset"))
    return query.limit(bindparam("limit"))


#: ``transactions_of``'s statements, built once, by (from_date given, to_date given)
_TRANSACTIONS = {
    (since, until): _transactions_query(since, until)
    for since in (False, True)
    for until in (False, True)
}
#: the same, each slice after the previous one's last row (``transaction_slices``)
_AFTER = {
    (since, until): _transactions_query(since, until, after=True)
    for since in (False, True)
    for until in (False, True)
}


async def _core(session: AsyncSession) -> AsyncConnection:
    """The session's connection, in its transaction (and so its tenant scope, S14): pages of
    plain rows executed on it skip the ORM's result processing (its row loading costs more than
    the query for a 100-row page; ``Session.execute`` runs it even for a select of columns)."""
    return await session.connection()


def _values(
    login: LoginRef, account_ids: Sequence[int], from_date: date | None, to_date: date | None
) -> dict[str, Any]:
    values: dict[str, Any] = {"app_id": login.app_id, "account_ids": list(account_ids)}
    if from_date is not None:
        values["from_date"] = from_date
    if to_date is not None:
        values["to_date"] = to_date
    return values


async def transactions_of(
    session: AsyncSession,
    login: LoginRef,
    account_ids: Sequence[int],
    from_date: date | None,
    to_date: date | None,
    offset: int,
    limit: int,
) -> Sequence[Row[Any]]:
    """Newest first; ``limit`` rows from ``offset``, as plain rows of :data:`API_COLUMNS`.

    Plain rows, not ORM objects, and statements built once: this is the hottest read, and
    building an ORM object per row cost more than the query itself (bench/read.py).
    """
    query = _TRANSACTIONS[from_date is not None, to_date is not None]
    values = _values(login, account_ids, from_date, to_date)
    values.update(offset=offset, limit=limit)
    return (await (await _core(session)).execute(query, values)).all()


async def count_transactions(
    session: AsyncSession,
    login: LoginRef,
    account_ids: Sequence[int],
    from_date: date | None,
    to_date: date | None,
) -> int:
    query = select(func.count()).where(
        Transaction.app_id == login.app_id, Transaction.account_id.in_(list(account_ids))
    )
    if from_date is not None:
        query = query.where(Transaction.date >= from_date)
    if to_date is not None:
        query = query.where(Transaction.date <= to_date)
    return int((await session.execute(query)).scalar_one())


async def transaction_slices(
    db: Database,
    cipher: Cipher,
    login: LoginRef,
    account_ids: Sequence[int],
    from_date: date | None,
    to_date: date | None,
    after: Any,
    size: int,
) -> AsyncIterator[list[TransactionView]]:
    """The rows after ``after`` (a row of :data:`API_COLUMNS`), newest first, ``size`` at a
    time, each slice read in a unit of work of its own: a slow reader of a long answer holds no
    database connection while it reads. A row is never given twice; rows a sync adds or removes
    meanwhile may or may not be given."""
    query = _AFTER[from_date is not None, to_date is not None]
    values = _values(login, account_ids, from_date, to_date)
    values["limit"] = size
    with tenancy.acting_for(login.app_id):
        while True:
            values.update(after_date=after.date, after_id=after.id)
            async with db.read() as session:
                rows = (await (await _core(session)).execute(query, values)).all()
                if not rows:
                    return
                views = await opened_rows(session, cipher, login.app_id, rows)
            yield views
            if len(rows) < size:
                return
            after = rows[-1]
