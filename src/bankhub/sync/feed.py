"""The Bank Feed: every run that brought rows in, as it happened, read from ``sync_runs``.

One record for all of them, written in the unit of work that stored the rows (so a run that
rolled back leaves no line behind): a connect's first sync, a refresh, a statement file over
the API, the command line or the SFTP drop, and a file refused before it reached a login. The
dashboard reads it page by page (newest first, keyed by id) and polls its newest lines.

A run's ``skipped`` is what the source sent that was stored already: the same file imported
again, an overlapping statement, the bank listing the same months once more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account, Transaction
from bankhub.catalogue import Catalogue
from bankhub.customers.models import Customer
from bankhub.db import tenancy
from bankhub.db.batches import purge_in_batches
from bankhub.db.engine import Database
from bankhub.logins.models import Login
from bankhub.sync.engine import ApplySummary
from bankhub.sync.models import SyncRun

#: each kind of run in the words of a partner's developer
SOURCES = {
    "connect": "connect page",
    "manual": "refresh (API)",
    "scheduled": "scheduled refresh",
    "api": "statement upload (API)",
    "cli": "statement import (CLI)",
    "sftp": "SFTP drop",
}
#: the ``worker`` of runs that are not a worker's (a connect, an import)
BY_REQUEST = "request"
#: the longest error text kept and shown
ERROR_LIMIT = 500
#: runs deleted per transaction by the retention sweep
PURGE_BATCH = 1000


async def purge(db: Database, now: datetime, *, days: int, batch: int = PURGE_BATCH) -> int:
    """Delete the runs that finished more than ``days`` before ``now`` (the retention sweep's
    and ``bankhub purge``'s), in short batches; how many went."""
    old: ColumnElement[bool] = SyncRun.finished_at < now - timedelta(days=days)
    with tenancy.everything():  # S14: the sweep purges every app's rows
        return await purge_in_batches(db, SyncRun, SyncRun.id, old, batch)


def skipped(summary: ApplySummary) -> int:
    """Rows of the fetch or file that were not added: stored already, or listed twice."""
    return max(0, summary.received - summary.inserted)


def record(
    session: AsyncSession,
    *,
    app_id: int,
    kind: str,
    connector: str | None,
    started_at: datetime,
    finished_at: datetime,
    summary: ApplySummary | None = None,
    login_id: int | None = None,
    customer_id: str | None = None,
    outcome: str = "ok",
    error: str | None = None,
    file_name: str | None = None,
    worker: str = BY_REQUEST,
) -> SyncRun:
    """Add a run to the caller's unit of work."""
    run = SyncRun(
        app_id=app_id,
        login_id=login_id,
        customer_id=customer_id if login_id is None else None,
        kind=kind,
        worker=worker[:64],
        connector=connector[:40] if connector else None,
        started_at=started_at,
        finished_at=finished_at,
        outcome=outcome[:40],
        inserted=summary.inserted if summary else 0,
        skipped=skipped(summary) if summary else 0,
        file_name=file_name[:255] if file_name else None,
        error=error[:ERROR_LIMIT] if error else None,
    )
    session.add(run)
    return run


async def record_refused_file(
    session: AsyncSession,
    *,
    app_id: int,
    kind: str,
    customer_id: str,
    at: datetime,
    outcome: str,
    error: str,
    file_name: str | None,
) -> None:
    """A statement file refused before it reached a login (unreadable, no such customer): the
    feed shows it with its error; kept with the customer when the app has one by that id."""
    found = await session.execute(
        select(Customer.id).where(Customer.app_id == app_id, Customer.id == customer_id[:36])
    )
    record(
        session,
        app_id=app_id,
        kind=kind,
        connector="statement",
        started_at=at,
        finished_at=at,
        customer_id=found.scalar_one_or_none(),
        outcome=outcome,
        error=error,
        file_name=file_name,
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the feed, as the dashboard shows it and its JSON carries it."""

    id: int
    at: datetime
    source: str
    connector: str
    bank: str
    login_id: int | None
    customer: str
    file_name: str
    added: int
    skipped: int
    ok: bool
    outcome: str
    error: str
    milliseconds: int


def _bank(catalogue: Catalogue, service_id: int | None) -> str:
    if service_id is None:
        return ""
    service = catalogue.get(service_id)
    return service.name if service else f"service {service_id}"


async def entries(
    session: AsyncSession,
    catalogue: Catalogue,
    app_id: int,
    *,
    before: int | None = None,
    limit: int = 50,
) -> list[Entry]:
    """The app's runs, newest first, ``limit`` of them older than run ``before``."""
    owner = func.coalesce(Login.customer_id, SyncRun.customer_id)
    query = (
        select(SyncRun, Login.service_id, Customer.identifier)
        .outerjoin(Login, Login.id == SyncRun.login_id)
        .outerjoin(Customer, Customer.id == owner)
        .where(SyncRun.app_id == app_id)
        .order_by(SyncRun.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(SyncRun.id < before)
    found = []
    for run, service_id, identifier in (await session.execute(query)).all():
        took = (run.finished_at - run.started_at).total_seconds()
        found.append(
            Entry(
                id=run.id,
                at=run.finished_at,
                source=SOURCES.get(run.kind, run.kind),
                connector=run.connector or "",
                bank=_bank(catalogue, service_id),
                login_id=run.login_id,
                customer=identifier or "",
                file_name=run.file_name or "",
                added=run.inserted,
                skipped=run.skipped,
                ok=run.outcome == "ok",
                outcome=run.outcome,
                error=run.error or "",
                milliseconds=max(0, round(took * 1000)),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class LoginAccount:
    """An account of a login as the dashboard shows a test connect's result: no balances,
    no transactions, the number masked as the API masks it."""

    id: int
    name: str
    type: str
    number_masked: str
    currency: str
    transactions: int


async def login_accounts(session: AsyncSession, app_id: int, login_id: int) -> list[LoginAccount]:
    """The login's accounts with how many transactions each holds."""
    query = (
        select(Account)
        .where(Account.app_id == app_id, Account.login_id == login_id)
        .order_by(Account.id)
    )
    accounts = list((await session.execute(query)).scalars())
    counted = await session.execute(
        select(Transaction.account_id, func.count())
        .where(Transaction.account_id.in_([a.id for a in accounts]))
        .group_by(Transaction.account_id)
    )
    counts: dict[int, int] = {account_id: int(n) for account_id, n in counted.all()}
    return [
        LoginAccount(
            id=account.id,
            name=account.name,
            type=account.type,
            number_masked=account.number_masked or "",
            currency=account.currency,
            transactions=counts.get(account.id, 0),
        )
        for account in accounts
    ]
