"""The change log behind ``/v2/transaction/sync``: what was added, modified or removed, in order.

A partner reads an account's log from a cursor, the id of the last row it read, so a row must
never commit with an id below one a reader has already seen. Ids come from the table's sequence
when a row is inserted, not when its transaction commits: two transactions that write rows of
the same account at once could commit in the other order than they took their ids, and a reader
between the two commits would move past the rows still to come (the event feed had exactly
this hole, see ``db.commit_order``).

Who writes an account's log:

* a sync of the account's login (a refresh, the connect page's first sync or reconnect, a
  statement import): it updates the account's row before it writes any change of it, so it
  holds that row's lock from before its first change to its commit. Two syncs of one login do
  not overlap anyway (the sync lease keeps their fetches apart, and each apply holds the
  login's row: a refresh locks it ``FOR UPDATE``, a reconnect updates it first; imports of one
  customer take turns on the customer's row).
* the retention purge, which deletes the account's oldest transactions and logs each as
  ``removed``, in short transactions of its own. It holds neither the lease nor the login: it
  ran beside a sync of the same account whenever the rows it purged were older than what the
  sync read again, and that was the hole. A long sync took its ids, the purge took larger ones
  and committed first, a reader moved past them, and the sync's rows committed behind it.

So the account's row is the log's lock: every writer goes through :func:`log`, which locks the
account's row (``FOR NO KEY UPDATE``) before it takes ids, and holds it, like any row lock, until
its commit. Writers of one account's log are therefore serialised from their first id to their
commit, and the ids of each account's log are in commit order: a reader that follows its cursor
gets every committed change exactly once. Syncs pay nothing for it (they held the row already);
the purge takes the accounts' rows before it deletes anything, skipping the accounts a sync
holds at that moment (``SKIP LOCKED``: their rows are being fetched again, and the next sweep
purges what is still due), so it never waits for a sync and never makes one wait for long.
The reader still pages on ``id``: cursors handed out before keep their meaning. On SQLite
nothing is locked: one writer at a time already keeps ids in commit order.

``tests/api/test_feed_order.py`` holds a sync open after it took its ids while a purge of the
same account runs and the reader reads; it fails if any writer logs without the account's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import ForeignKey, Index, Integer, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.accounts.models import Account
from bankhub.db import bulk
from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime

ADDED = "added"
MODIFIED = "modified"
REMOVED = "removed"


class TransactionChange(Base):
    __tablename__ = "transaction_changes"
    # Ids are cursors: SQLite must never hand out the id of a deleted newest row again.
    __table_args__ = (
        Index("ix_transaction_changes_account_seq", "account_id", "id"),
        {"sqlite_autoincrement": True},
    )

    #: the sequence a cursor points into
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: no foreign key: a removed transaction's row is gone, its id is what the partner needs
    transaction_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


async def log(
    session: AsyncSession,
    *,
    app_id: int,
    entries: Sequence[tuple[int, str, Sequence[int]]],
    now: datetime,
) -> None:
    """Append to accounts' change logs, in the caller's unit of work: for each ``(account_id,
    kind, transaction_ids)`` of ``entries``, in order, one row per id in the ids' order. Locks
    the accounts' rows first, in ascending order (see the module's text); the locks last until
    the unit of work ends."""
    accounts = sorted({account_id for account_id, _, ids in entries if ids})
    if not accounts:
        return
    if session.bind.dialect.name == "postgresql":
        # key_share: FOR NO KEY UPDATE, what an UPDATE of the row takes (a sync's); the
        # foreign-key checks of rows inserted beside it stay free. SQLite has no row locks (it
        # would run the query and lock nothing): its one writer keeps the ids in commit order.
        await session.execute(
            select(Account.id)
            .where(Account.id.in_(accounts))
            .order_by(Account.id)
            .with_for_update(key_share=True)
        )
    table = cast(Table, TransactionChange.__table__)
    for account_id, kind, ids in entries:
        constants = {"app_id": app_id, "account_id": account_id, "kind": kind, "changed_at": now}
        await bulk.insert_per_id(session, table, "transaction_id", ids, constants)
