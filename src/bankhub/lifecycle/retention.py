"""Retention: financial data not fetched again within the app's window is purged (seed 004, S25).

Each app keeps what it fetched for ``retention_hours`` (24 by default, at most a year when the
app opts in). A purge deletes, per app, the transactions whose ``fetched_at`` is older than the
window and writes a ``removed`` change for each, so ``/v2/transaction/sync`` tells the partner;
it also deletes change-log rows older than the window that describe data that is gone, and
empties the response excerpts of webhook attempts older than the window. One audit entry
(``system:retention`` / ``data.purged``) records each app's purge. Usage counts (API calls and
connect outcomes per hour, docs/usage.md) are kept for ``usage_days`` (400 by default) and purged
in the same sweep.

The same sweep purges the audit log: entries older than ``BANKHUB_AUDIT_RETENTION_DAYS`` (400 by
default) go, and one ``audit.purged`` entry records how many.

Work goes in bounded batches, one short transaction each, so a large purge never holds one huge
transaction or a long lock. Several runners may purge at once: rows are deleted by id lists with
``RETURNING`` and only what a runner really deleted is counted and logged, so a row deleted by
two runners is counted once and never fails the second. A batch locks the rows of the accounts
it purges first, as every writer of an account's change log does (``accounts.changes``); an
account a sync (or another runner) holds at that moment is purged after the others, once it is
free.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bankhub.accounts import changes
from bankhub.accounts.changes import REMOVED, TransactionChange
from bankhub.accounts.models import Account, Transaction
from bankhub.audit import services as audit
from bankhub.clock import Clock, stamp
from bankhub.db.engine import Database
from bankhub.partners.models import App
from bankhub.usage import store as usage
from bankhub.webhooks.models import WebhookAttempt

log = logging.getLogger("bankhub.retention")

#: rows deleted or updated per transaction
BATCH = 5000
ACTOR = "system:retention"
ACTION = "data.purged"
AUDIT_ACTION = "audit.purged"
AUDIT_RETENTION_DAYS = 400


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
            "older_than": stamp(self.older_than),
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
    #: hourly usage-count rows older than the usage retention (every app's, and unattributed)
    usage_rows: int = 0
    #: audit entries older than the audit retention that this purge removed
    audit_entries: int = 0
    #: the purge of old audit entries failed part-way (logged; the next sweep carries on)
    audit_failed: bool = False

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
            "at": stamp(self.at),
            "apps_checked": self.apps_checked,
            "transactions": self.transactions,
            "changes": self.changes,
            "webhook_excerpts": self.webhook_excerpts,
            "usage_rows": self.usage_rows,
            "apps": [a.as_dict() for a in self.apps],
            "failed": list(self.failed),
            "audit_entries": self.audit_entries,
            "audit_failed": self.audit_failed,
        }


async def purge(
    db: Database,
    clock: Clock,
    *,
    batch: int = BATCH,
    usage_days: int = usage.RETENTION_DAYS,
    audit_retention_days: int = AUDIT_RETENTION_DAYS,
) -> PurgeReport:
    """Purge every app's data older than its own retention window, usage counts older than
    ``usage_days`` and audit entries older than ``audit_retention_days``, as of ``clock()``."""
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
    try:
        report.usage_rows = await usage.purge(db, now, days=usage_days, batch=batch)
    except Exception:
        log.exception("purging old usage counts failed; the next sweep carries on")
    try:
        await _purge_audit(db, now, now - timedelta(days=audit_retention_days), report, batch)
    except Exception:
        log.exception("purge of old audit entries failed part-way; the next sweep carries on")
        report.audit_failed = True
    return report


async def _purge_audit(
    db: Database, now: datetime, older_than: datetime, report: PurgeReport, batch: int
) -> None:
    while True:
        async with db.transaction() as session:
            gone = await audit.purge_batch(session, older_than, batch)
        report.audit_entries += gone
        if gone < batch:
            break
    if not report.audit_entries:
        return
    async with db.transaction() as session:
        audit.record(
            session,
            now=now,
            actor=ACTOR,
            action=AUDIT_ACTION,
            target_type="audit_log",
            detail={"entries": report.audit_entries, "older_than": stamp(older_than)},
        )
    log.info(
        "purged %d audit entries older than %s",
        report.audit_entries,
        stamp(older_than),
        extra={"audit_entries": report.audit_entries},
    )


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
                "older_than": stamp(result.older_than),
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
        stamp(result.older_than),
        extra=result.as_dict(),
    )


async def _in_batches(
    db: Database,
    id_column: InstrumentedAttribute[int],
    where: Sequence[ColumnElement[bool]],
    batch: int,
    act: Callable[[AsyncSession, list[int]], Awaitable[int]],
) -> int:
    """Walk the ids matching ``where`` in batches, each in a short transaction of its own;
    ``act`` works on one batch and returns how many rows it really touched."""
    after, done = 0, 0
    while True:
        async with db.transaction() as session:
            query = select(id_column).where(*where, id_column > after).order_by(id_column)
            ids = list((await session.execute(query.limit(batch))).scalars())
            if not ids:
                return done
            after = ids[-1]
            done += await act(session, ids)
        if len(ids) < batch:
            return done


async def _purge_transactions(db: Database, now: datetime, result: AppPurge, batch: int) -> None:
    """Delete the app's transactions not fetched since the window began, logging each as
    removed. Every writer of an account's change log holds the account's row (accounts.changes):
    a batch locks the rows of its accounts first. It skips those held right now (by a sync,
    or another runner) rather than wait while it holds others, which could wait in a cycle with
    a sync taking its login's accounts in another order; each skipped account is purged
    afterwards on its own, in transactions that wait for it while holding nothing else."""
    cutoff = result.older_than
    busy: set[int] = set()

    def delete_batch(*, wait: bool) -> Callable[[AsyncSession, list[int]], Awaitable[int]]:
        async def act(session: AsyncSession, ids: list[int]) -> int:
            wanted = set(
                (
                    await session.execute(
                        select(Transaction.account_id).where(Transaction.id.in_(ids)).distinct()
                    )
                ).scalars()
            )
            locked = set(
                (
                    await session.execute(
                        select(Account.id)
                        .where(Account.id.in_(sorted(wanted)))
                        .order_by(Account.id)
                        .with_for_update(key_share=True, skip_locked=not wait)
                    )
                ).scalars()
            )
            if not wait:
                busy.update(wanted - locked)
            if not locked:
                return 0
            # Re-checked under each row's lock: a row another runner deleted, or a sync fetched
            # again meanwhile, is not returned, so it is neither counted nor logged as removed.
            deleted = sorted(
                (
                    await session.execute(
                        delete(Transaction)
                        .where(
                            Transaction.id.in_(ids),
                            Transaction.account_id.in_(sorted(locked)),
                            Transaction.fetched_at < cutoff,
                        )
                        .returning(Transaction.account_id, Transaction.id)
                        .execution_options(synchronize_session=False)
                    )
                ).tuples()
            )
            by_account: dict[int, list[int]] = {}
            for account_id, transaction_id in deleted:
                by_account.setdefault(account_id, []).append(transaction_id)
            await changes.log(
                session,
                app_id=result.app_id,
                entries=[(account, REMOVED, removed) for account, removed in by_account.items()],
                now=now,
            )
            return len(deleted)

        return act

    due = [Transaction.app_id == result.app_id, Transaction.fetched_at < cutoff]
    result.transactions += await _in_batches(
        db, Transaction.id, due, batch, delete_batch(wait=False)
    )
    for account_id in sorted(busy):
        result.transactions += await _in_batches(
            db,
            Transaction.id,
            [*due, Transaction.account_id == account_id],
            batch,
            delete_batch(wait=True),
        )


async def _purge_changes(db: Database, result: AppPurge, batch: int) -> None:
    """Change-log rows older than the window that describe data that is gone: ``removed``
    entries, and entries of transactions no longer stored. Entries of transactions still stored
    stay (a partner starting the feed without a cursor learns of those rows from them).

    The newest row of the whole log always stays, so that no id behind a partner's cursor can
    be handed out again (a second guard beside AUTOINCREMENT on SQLite).
    """
    async with db.transaction() as session:
        newest = (await session.execute(select(func.max(TransactionChange.id)))).scalar_one()
    if newest is None:
        return
    gone = or_(
        TransactionChange.kind == REMOVED,
        ~exists().where(Transaction.id == TransactionChange.transaction_id),
    )

    async def delete_batch(session: AsyncSession, ids: list[int]) -> int:
        deleted = await session.execute(
            delete(TransactionChange)
            .where(TransactionChange.id.in_(ids))
            .returning(TransactionChange.id)
            .execution_options(synchronize_session=False)
        )
        return len(deleted.all())

    result.changes += await _in_batches(
        db,
        TransactionChange.id,
        [
            TransactionChange.app_id == result.app_id,
            TransactionChange.changed_at < result.older_than,
            TransactionChange.id < newest,
            gone,
        ],
        batch,
        delete_batch,
    )


async def _clear_excerpts(db: Database, result: AppPurge, batch: int) -> None:
    async def clear_batch(session: AsyncSession, ids: list[int]) -> int:
        cleared = await session.execute(
            update(WebhookAttempt)
            .where(WebhookAttempt.id.in_(ids), WebhookAttempt.response_excerpt != "")
            .values(response_excerpt="")
            .returning(WebhookAttempt.id)
            .execution_options(synchronize_session=False)
        )
        return len(cleared.all())

    result.webhook_excerpts += await _in_batches(
        db,
        WebhookAttempt.id,
        [
            WebhookAttempt.app_id == result.app_id,
            WebhookAttempt.attempted_at < result.older_than,
            WebhookAttempt.response_excerpt != "",
        ],
        batch,
        clear_batch,
    )
