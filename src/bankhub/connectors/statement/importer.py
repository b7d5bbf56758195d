"""Import a parsed statement for a customer: the same apply() as a bank sync.

The file is parsed before anything is written, so a broken file stores nothing. Applying goes
through :meth:`SyncEngine.apply`, which dedupes on the file's transaction ids or on content
fingerprints: importing the same file twice, or an overlapping one, adds nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts import changes as changes_log
from bankhub.accounts.changes import TransactionChange
from bankhub.accounts.models import Account
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.catalogue import Catalogue, Service
from bankhub.connectors.base import AccountRecord, ConnectorInfo
from bankhub.customers import services as customers
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.statements import ParsedStatement
from bankhub.sync.engine import FetchedAccount, FetchResult, SyncEngine, mask_number

CONNECTOR_ID = "statement"
#: connector state: per account (bank id), the date and amount of the newest closing balance
BALANCES = "closing_balances"


@dataclass(frozen=True, slots=True)
class ImportedAccount:
    id: int
    number_masked: str | None
    currency: str
    imported: int
    closing_balance: Decimal | None
    closing_date: date | None


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    login_id: int
    #: the login-secret, only when this import created the login (shown once)
    secret: str | None
    format: str
    accounts: list[ImportedAccount]


def statement_service(catalogue: Catalogue) -> Service:
    """The catalogue's statement-file service (the first one served by this connector)."""
    for service in catalogue.services:
        if service.connector == CONNECTOR_ID:
            return service
    raise ApiError(ErrorCode.SERVICE_NOT_FOUND, "The catalogue has no statement-file service")


def to_fetch_result(parsed: ParsedStatement, state: dict[str, Any]) -> FetchResult:
    """The file as a fetch. An older file does not move a balance a newer file already set."""
    known: dict[str, Any] = dict(state.get(BALANCES, {}))
    fetched: list[FetchedAccount] = []
    for account in parsed.accounts:
        record = account.to_account_record()
        key = record.bank_id
        stamp = account.closing_date.isoformat() if account.closing_date else None
        if key is not None and stamp is not None:
            newest = known.get(key)
            if newest is not None and newest[0] > stamp:
                record = _with_balance(record, Decimal(newest[1]))
            else:
                known[key] = [stamp, str(record.balance)]
        fetched.append(FetchedAccount(record, list(account.transactions)))
    # since=None: the window is what the file covers, never a fixed history start.
    return FetchResult(fetched, None, {**state, BALANCES: known}, None)


def _with_balance(record: AccountRecord, balance: Decimal) -> AccountRecord:
    return replace(record, balance=balance, available_balance=None)


async def _target_login(
    session: AsyncSession, app: App, customer_id: str, service: Service, login_id: int
) -> Login:
    login = await session.get(Login, login_id)
    if (
        login is None
        or login.app_id != app.id
        or login.customer_id != customer_id
        or login.service_id != service.id
    ):
        raise ApiError(
            ErrorCode.LOGIN_NOT_FOUND,
            f"Cannot find a statement login with id {login_id} for this customer.",
            {"login_id": login_id},
        )
    return login


async def import_statement(
    session: AsyncSession,
    engine: SyncEngine,
    app: App,
    customer_id: str,
    parsed: ParsedStatement,
    login_id: int | None = None,
) -> ImportOutcome:
    """Create (or reuse) the customer's statement login and apply the file to it."""
    from bankhub.connect.flow import grant_consent

    service = statement_service(engine.catalogue)
    info: ConnectorInfo = engine.registry.info(service.connector)
    customer = await customers.get_customer(session, app, customer_id)
    now = engine.clock()
    secret: str | None = None
    if login_id is not None:
        login = await _target_login(session, app, customer.id, service, login_id)
    else:
        login, secret = logins.add_login(
            session,
            engine.hasher,
            now,
            app_id=app.id,
            customer_id=customer.id,
            service_id=service.id,
        )
        await session.flush()
    before = (await session.execute(select(func.max(TransactionChange.id)))).scalar() or 0
    result = to_fetch_result(parsed, engine.state_of(login))
    summary = await engine.apply(session, login, result)
    grant_consent(login, info, now)
    login.next_sync_at = None
    counted = await session.execute(
        select(TransactionChange.account_id, func.count())
        .where(
            TransactionChange.id > before,
            TransactionChange.account_id.in_(summary.account_ids),
            TransactionChange.kind == changes_log.ADDED,
        )
        .group_by(TransactionChange.account_id)
    )
    added: dict[int, int] = {account_id: count for account_id, count in counted.all()}
    accounts: list[ImportedAccount] = []
    for account_id, source in zip(summary.account_ids, parsed.accounts, strict=True):
        row = await session.get(Account, account_id)
        if row is None:  # pragma: no cover - apply() just wrote it
            continue
        accounts.append(
            ImportedAccount(
                id=account_id,
                number_masked=row.number_masked or mask_number(source.iban or source.number),
                currency=row.currency,
                imported=int(added.get(account_id, 0)),
                closing_balance=source.closing_balance,
                closing_date=source.closing_date,
            )
        )
    return ImportOutcome(login.id, secret, parsed.format, accounts)
