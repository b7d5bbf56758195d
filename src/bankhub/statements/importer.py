"""Import a parsed statement for a customer: the same apply() as a bank sync.

The file is parsed before anything is written, so a broken file stores nothing. A file goes to
the customer's statement login that already holds its accounts (found by IBAN or number and
currency through the accounts' keyed ``match_key``), or to the login the caller names; only a
file of accounts bankhub does not know yet opens a new login. Applying goes through
:meth:`SyncEngine.apply`, which dedupes on the file's transaction ids or on content
fingerprints: importing the same file twice, or an overlapping one, adds nothing twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts import changes as changes_log
from bankhub.accounts.changes import TransactionChange
from bankhub.accounts.models import Account
from bankhub.catalogue import Catalogue, Service
from bankhub.categories import Category
from bankhub.connectors.base import ConnectorInfo, TransactionRecord
from bankhub.connectors.statement.connector import StatementUnreadable, parse_upload
from bankhub.customers import services as customers
from bankhub.customers.models import Customer
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.events import services as events
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.security.pan import mask_pans
from bankhub.statements import ParsedStatement
from bankhub.statements.csvfiles import CsvMapping
from bankhub.sync import feed
from bankhub.sync.engine import FetchedAccount, FetchResult, SyncEngine, mask_number

CONNECTOR_ID = "statement"
#: what older versions kept in the connector state (the newest closing balance per account)
LEGACY_BALANCES = "closing_balances"


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
    #: whether this import created the login (else it is the one named or holding the accounts)
    login_created: bool = False


def statement_service(catalogue: Catalogue) -> Service:
    """The catalogue's statement-file service (the first one served by this connector)."""
    for service in catalogue.services:
        if service.connector == CONNECTOR_ID:
            return service
    raise NotFound(ErrorCode.SERVICE_NOT_FOUND, "The catalogue has no statement-file service")


def to_fetch_result(parsed: ParsedStatement, state: dict[str, Any]) -> FetchResult:
    """The file as a fetch. Balances are the file's own, with their dates: the sync engine keeps
    a stated balance when the file states none or states an older one."""
    fetched = [
        FetchedAccount(account.to_account_record(), list(account.transactions))
        for account in parsed.accounts
    ]
    # Dates and balances of earlier files lived in the connector state before the accounts
    # kept their balance date; the state no longer carries them.
    kept = {key: value for key, value in state.items() if key != LEGACY_BALANCES}
    # since=None: the window is what the file covers, never a fixed history start.
    return FetchResult(fetched, None, kept, None)


async def _adopt_legacy_dates(
    session: AsyncSession, engine: SyncEngine, login: Login, state: dict[str, Any]
) -> None:
    """Older versions kept each account's newest closing date in the connector state. An account
    stored then has no balance date yet; it takes that one, so that an older file still cannot
    move its balance back."""
    legacy = state.get(LEGACY_BALANCES)
    if not isinstance(legacy, dict) or not legacy:
        return
    # The state names accounts by their bank id as it was stored then (in clear); bank ids are
    # now sealed and card numbers masked, so both sides are compared masked.
    by_id = {mask_pans(key): stamp for key, stamp in legacy.items() if isinstance(key, str)}
    undated = await session.execute(
        select(Account).where(Account.login_id == login.id, Account.balance_date.is_(None))
    )
    for account in undated.scalars():
        stamp = by_id.get(engine.account_bank_id(account) or "")
        if isinstance(stamp, list) and stamp and isinstance(stamp[0], str):
            try:
                account.balance_date = date.fromisoformat(stamp[0])
            except ValueError:
                continue


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
        raise NotFound(
            ErrorCode.LOGIN_NOT_FOUND,
            f"Cannot find a statement login with id {login_id} for this customer.",
            {"login_id": login_id},
        )
    return login


async def _one_import_at_a_time(session: AsyncSession, customer: Customer) -> None:
    """Imports of one customer take turns: two at once must not both open a login for the same
    accounts. PostgreSQL locks the customer's row; SQLite has one writer at a time."""
    await session.execute(select(Customer.id).where(Customer.id == customer.id).with_for_update())


async def _login_holding(
    session: AsyncSession,
    engine: SyncEngine,
    app: App,
    customer: Customer,
    service: Service,
    parsed: ParsedStatement,
) -> Login | None:
    """The customer's statement login that holds the file's accounts, or None.

    Accounts are recognised as a sync recognises them: by IBAN or number and currency (their
    keyed ``match_key``). A file that names no account number (a PayPal report) is recognised
    by the account name it states, with currency and type. When the accounts are spread over
    several logins, the login holding most of them wins, then the oldest.
    """
    held = (
        await session.execute(
            select(
                Account.login_id, Account.match_key, Account.name, Account.currency, Account.type
            )
            .join(Login, Login.id == Account.login_id)
            .where(
                Login.app_id == app.id,
                Login.customer_id == customer.id,
                Login.service_id == service.id,
            )
        )
    ).all()
    keys = {
        key
        for account in parsed.accounts
        if (key := engine.match_key(account.iban or account.number, account.currency))
    }
    votes: Counter[int] = Counter(row.login_id for row in held if row.match_key in keys)
    if not votes:
        named = {
            (account.name, account.currency, str(account.type))
            for account in parsed.accounts
            if account.name and not (account.iban or account.number)
        }
        votes.update(
            row.login_id
            for row in held
            if row.match_key is None and (row.name, row.currency, row.type) in named
        )
    if not votes:
        return None
    login_id = min(votes, key=lambda found: (-votes[found], found))
    return await session.get(Login, login_id)


async def _own_account_keys(
    session: AsyncSession, engine: SyncEngine, app: App, customer: Customer, parsed: ParsedStatement
) -> set[str]:
    """The match keys of every account the customer has (through any login) or the file holds."""
    stored = await session.execute(
        select(Account.match_key)
        .join(Login, Login.id == Account.login_id)
        .where(
            Login.app_id == app.id,
            Login.customer_id == customer.id,
            Account.match_key.is_not(None),
        )
    )
    keys = {key for key in stored.scalars() if key}
    for account in parsed.accounts:
        key = engine.match_key(account.iban or account.number, account.currency)
        if key:
            keys.add(key)
    return keys


def own_transfers(engine: SyncEngine, parsed: ParsedStatement, own: set[str]) -> ParsedStatement:
    """A booking whose counterparty account is one of the customer's own accounts is a transfer,
    whatever its text says (a savings plan, a card repayment): the file knows this category the
    way a bank that classifies its bookings does."""
    if not own:
        return parsed
    seen: dict[tuple[str, str], bool] = {}  # counterparties repeat: one keyed hash each

    def is_own(row: TransactionRecord) -> bool:
        if row.category is not None or not row.counterparty_account:
            return False
        ident = (row.counterparty_account, row.currency)
        if ident not in seen:
            seen[ident] = engine.match_key(*ident) in own
        return seen[ident]

    return replace(
        parsed,
        accounts=tuple(
            replace(
                account,
                transactions=tuple(
                    replace(row, category=Category.TRANSFER.value) if is_own(row) else row
                    for row in account.transactions
                ),
            )
            for account in parsed.accounts
        ),
    )


async def import_statement(
    session: AsyncSession,
    engine: SyncEngine,
    app: App,
    customer_id: str,
    parsed: ParsedStatement,
    login_id: int | None = None,
    *,
    source: str = "api",
    file_name: str | None = None,
) -> ImportOutcome:
    """Apply the file to the customer's statement login: the one named by ``login_id``, else
    the one holding the file's accounts, else a new one. The import is a run of the Bank Feed
    (``bankhub.sync.feed``): ``source`` is where the file came from (``api``, ``cli``,
    ``sftp``), ``file_name`` its name as given."""
    service = statement_service(engine.catalogue)
    info: ConnectorInfo = engine.registry.info(service.connector)
    customer = await customers.get_customer(session, app, customer_id)
    await _one_import_at_a_time(session, customer)
    now = engine.clock()
    secret: str | None = None
    if login_id is not None:
        login: Login | None = await _target_login(session, app, customer.id, service, login_id)
    else:
        login = await _login_holding(session, engine, app, customer, service, parsed)
    if login is None:
        login, secret = logins.add_login(
            session,
            engine.hasher,
            now,
            app_id=app.id,
            customer_id=customer.id,
            service_id=service.id,
        )
        await session.flush()
    parsed = own_transfers(
        engine, parsed, await _own_account_keys(session, engine, app, customer, parsed)
    )
    before = (await session.execute(select(func.max(TransactionChange.id)))).scalar() or 0
    state = engine.state_of(login)
    await _adopt_legacy_dates(session, engine, login, state)
    result = to_fetch_result(parsed, state)
    summary = await engine.apply(session, login, result)
    logins.grant_consent(login, info, now)
    login.next_sync_at = None
    feed.record(
        session,
        app_id=app.id,
        login_id=login.id,
        kind=source,
        connector=service.connector,
        started_at=now,
        finished_at=engine.clock(),
        summary=summary,
        file_name=file_name,
    )
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
    for account_id, in_file in zip(summary.account_ids, parsed.accounts, strict=True):
        row = await session.get(Account, account_id)
        if row is None:  # pragma: no cover - apply() just wrote it
            continue
        accounts.append(
            ImportedAccount(
                id=account_id,
                number_masked=row.number_masked or mask_number(in_file.iban or in_file.number),
                currency=row.currency,
                imported=int(added.get(account_id, 0)),
                closing_balance=in_file.closing_balance,
                closing_date=in_file.closing_date,
            )
        )
    return ImportOutcome(
        login.id, secret, parsed.format, accounts, login_created=secret is not None
    )


async def parse_file(
    data: bytes,
    filename: str | None,
    currency: str | None = None,
    mapping: CsvMapping | None = None,
) -> ParsedStatement:
    """Parse off the event loop; a file bankhub cannot read is a DataInvalid error."""
    try:
        return await asyncio.to_thread(parse_upload, data, filename, currency, mapping)
    except StatementUnreadable as failure:
        extra = {"filename": (filename or "")[:200]}
        raise DomainError(ErrorCode.DATA_INVALID, failure.message, extra) from None


def imported_payload(
    customer_id: str, outcome: ImportOutcome, *, file_name: str | None, source: str, now: datetime
) -> dict[str, Any]:
    """The ``statement.imported`` body: where the file went and what it added, never its
    contents (no numbers, no balances)."""
    return {
        "customer_id": customer_id,
        "login_id": outcome.login_id,
        "login_created": outcome.login_created,
        "format": outcome.format,
        "accounts": [{"id": a.id, "imported": a.imported} for a in outcome.accounts],
        "imported": sum(a.imported for a in outcome.accounts),
        "file_name": file_name,
        "source": source,
        "timestamp": int(now.timestamp() * 1000),
    }


async def announce_import(
    session: AsyncSession,
    app_id: int,
    customer_id: str,
    outcome: ImportOutcome,
    *,
    file_name: str | None,
    source: str,
    now: datetime,
) -> None:
    """Record the ``statement.imported`` event in the import's unit of work. It names the
    login, so erasing the login (or its customer) erases the event with it."""
    await events.record(
        session,
        app_id=app_id,
        type=events.STATEMENT_IMPORTED,
        payload=imported_payload(customer_id, outcome, file_name=file_name, source=source, now=now),
        now=now,
        login_id=outcome.login_id,
    )
