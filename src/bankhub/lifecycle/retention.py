"""Retention: financial data not fetched again within the app's window is purged (seed 004, S25).

Each app keeps what it fetched for ``retention_hours`` (24 by default, at most a year when the
app opts in). A purge deletes, per app, the transactions whose ``fetched_at`` is older than the
window and writes a ``removed`` change for each, so ``/v2/transaction/sync`` tells the partner;
it also deletes change-log rows older than the window that describe data that is gone, and
empties the response excerpts of webhook attempts older than the window. One audit entry
(``system:retention`` / ``data.purged``) records each app's purge.

Work goes in bounded batches, one short transaction each, so a large purge never holds one huge
transaction or a long lock. Several runners may purge at once: rows are deleted by id lists with
``RETURNING`` and only what a runner really deleted is counted and logged, so a row deleted by
two runners is counted once and never fails the second.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, insert, or_, select, update

from bankhub.accounts.changes import REMOVED, TransactionChange
from bankhub.accounts.models import Transaction
from bankhub.api.schemas import wire_time
from bankhub.audit import services as audit
from bankhub.clock import Clock
from bankhub.db.engine import Database
from bankhub.partners.models import App
from bankhub.webhooks.models import WebhookAttempt

log = logging.getLogger("bankhub.retention")

#: rows deleted or updated per transaction
BATCH = 5000
ACTOR = "system:retention"
ACTION = "data.purged"


@dataclass(slots=True)
class AppPurge:
    """What one purge removed for one app."""

    app_id: int
    client_id: str
    retention_hours: int
    older_than: datetime
    transactions: int = 0
    changes: int = 0
    webhook_excerpts: int = 0

    @property
    def purged(self) -> bool:
        return bool(self.transactions or self.changes or self.webhook_excerpts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "client_id": self.client_id,
            "retention_hours": self.retention_hours,
            "older_than": wire_time(self.older_than),
            "transactions": self.transactions,
            "changes": self.changes,
            "webhook_excerpts": self.webhook_excerpts,
        }


@dataclass(slots=True)
class PurgeReport:
    """One purge over every app; the totals count only rows this purge really removed."""

    at: datetime
    apps_checked: int = 0
    #: apps with something purged
    apps: list[AppPurge] = field(default_factory=list)
    #: ids of apps whose purge failed part-way (logged; the next sweep carries on)
    failed: list[int] = field(default_factory=list)

    @property
    def transactions(self) -> int:
        return sum(a.transactions for a in self.apps)

    @property
    def changes(self) -> int:
        return sum(a.changes for a in self.apps)

    @property
    def webhook_excerpts(self) -> int:
        return sum(a.webhook_excerpts for a in self.apps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": wire_time(self.at),
            "apps_checked": self.apps_checked,
            "transactions": self.transactions,
            "changes": self.changes,
            "webhook_excerpts": self.webhook_excerpts,
            "apps": [a.as_dict() for a in self.apps],
            "failed": list(self.failed),
        }


async def purge(db: Database, clock: Clock, *, batch: int = BATCH) -> PurgeReport:
    """Purge every app's data older than its own retention window, as of ``clock()``."""
    now = clock()
    report = PurgeReport(at=now)
    async with db.transaction() as session:
        apps = (
            await session.execute(
                select(App.id, App.client_id, App.retention_hours).order_by(App.id)
            )
        ).all()
    report.apps_checked = len(apps)
    for app_id, client_id, hours in apps:
        result = AppPurge(
            app_id=app_id,
            client_id=client_id,
            retention_hours=hours,
            older_than=now - timedelta(hours=hours),
        )
        try:
            await _purge_app(db, now, result, batch)
        except Exception:
            log.exception(
                "retention purge of app %s failed part-way; the next sweep carries on",
                client_id,
                extra={"app_id": app_id, **result.as_dict()},
            )
            report.failed.append(app_id)
        if result.purged:
            report.apps.append(result)
    return report


async def _purge_app(db: Database, now: datetime, result: AppPurge, batch: int) -> None:
    await _purge_transactions(db, now, result, batch)
    await _purge_changes(db, result, batch)
    await _clear_excerpts(db, result, batch)
    if not result.purged:
        return
    async with db.transaction() as session:
        audit.record(
            session,
            now=now,
            actor=ACTOR,
            action=ACTION,
            target_type="app",
            target_id=result.app_id,
            app_id=result.app_id,
            detail={
                "transactions": result.transactions,
                "changes": result.changes,
                "webhook_excerpts": result.webhook_excerpts,
                "older_than": wire_time(result.older_than),
                "retention_hours": result.retention_hours,
            },
        )
    log.info(
        "retention purge of app %s: %d transactions, %d change-log rows, %d webhook excerpts "
        "older than %s",
        result.client_id,
        result.transactions,
        result.changes,
        result.webhook_excerpts,
        wire_time(result.older_than),
        extra=result.as_dict(),
    )


async def _purge_transactions(db: Database, now: datetime, result: AppPurge, batch: int) -> None:
    cutoff, after = result.older_than, 0
    while True:
        async with db.transaction() as session:
            ids = list(
                (
                    await session.execute(
                        select(Transaction.id)
                        .where(
                            Transaction.app_id == result.app_id,
                            Transaction.fetched_at < cutoff,
                            Transaction.id > after,
                        )
                        .order_by(Transaction.id)
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return
            after = ids[-1]
            # Re-checked under each row's lock: a row another runner deleted, or a sync fetched
            # again meanwhile, is not returned, so it is neither counted nor logged as removed.
            deleted = sorted(
                (
                    await session.execute(
                        delete(Transaction)
                        .where(Transaction.id.in_(ids), Transaction.fetched_at < cutoff)
                        .returning(Transaction.id, Transaction.account_id)
                        .execution_options(synchronize_session=False)
                    )
                ).tuples()
            )
            if deleted:
                await session.execute(
                    insert(TransactionChange),
                    [
                        {
                            "app_id": result.app_id,
                            "account_id": account_id,
                            "transaction_id": transaction_id,
                            "kind": REMOVED,
                            "changed_at": now,
                        }
                        for transaction_id, account_id in deleted
                    ],
                )
            result.transactions += len(deleted)
        if len(ids) < batch:
            return


async def _purge_changes(db: Database, result: AppPurge, batch: int) -> None:
    """Change-log rows older than the window that describe data that is gone: ``removed``
    entries, and entries of transactions no longer stored. Entries of transactions still stored
    stay (a partner starting the feed without a cursor learns of those rows from them).

    The newest row of the whole log always stays: on SQLite (no AUTOINCREMENT) deleting it would
    let the next change reuse its id, and partners whose cursor is past it would never see it.
    """
    cutoff, after = result.older_than, 0
    async with db.transaction() as session:
        newest = (await session.execute(select(func.max(TransactionChange.id)))).scalar_one()
    if newest is None:
        return
    gone = or_(
        TransactionChange.kind == REMOVED,
        ~exists().where(Transaction.id == TransactionChange.transaction_id),
    )
    while True:
        async with db.transaction() as session:
            ids = list(
                (
                    await session.execute(
                        select(TransactionChange.id)
                        .where(
                            TransactionChange.app_id == result.app_id,
                            TransactionChange.changed_at < cutoff,
                            TransactionChange.id > after,
                            TransactionChange.id < newest,
                            gone,
                        )
                        .order_by(TransactionChange.id)
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return
            after = ids[-1]
            deleted = (
                await session.execute(
                    delete(TransactionChange)
                    .where(TransactionChange.id.in_(ids))
                    .returning(TransactionChange.id)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            result.changes += len(deleted)
        if len(ids) < batch:
            return


async def _clear_excerpts(db: Database, result: AppPurge, batch: int) -> None:
    cutoff, after = result.older_than, 0
    while True:
        async with db.transaction() as session:
            ids = list(
                (
                    await session.execute(
                        select(WebhookAttempt.id)
                        .where(
                            WebhookAttempt.app_id == result.app_id,
                            WebhookAttempt.attempted_at < cutoff,
                            WebhookAttempt.response_excerpt != "",
                            WebhookAttempt.id > after,
                        )
                        .order_by(WebhookAttempt.id)
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return
            after = ids[-1]
            cleared = (
                await session.execute(
                    update(WebhookAttempt)
                    .where(WebhookAttempt.id.in_(ids), WebhookAttempt.response_excerpt != "")
                    .values(response_excerpt="")
                    .returning(WebhookAttempt.id)
                    .execution_options(synchronize_session=False)
                )
            ).all()
            result.webhook_excerpts += len(cleared)
        if len(ids) < batch:
            return
