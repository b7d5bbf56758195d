"""The event feed's rows are written at commit, in commit order, per app.

Partners read the event feed (``GET /v2/event``) from a cursor, the id of the last event they
read: they ask for the events after it and move it to the last one they got. That is only
right when no event can commit later with an id below one a reader has already seen.

PostgreSQL takes an id from the table's sequence when the row is inserted, not when its
transaction commits. A sync that recorded its event early and committed late would therefore
commit it below the cursor of a reader who, meanwhile, read the event of a shorter transaction
that took its id later and committed sooner: that event was skipped for good. SQLite has one
writer at a time, from its first write to its commit, so its ids are in commit order already.

What bankhub does: a unit of work does not insert an event when it records it. It queues the
insert (:func:`append`), and :func:`write_appends`, called by the unit of work just before it
commits, takes the app's *feed lock* and only then inserts the events (with their webhook
deliveries), so their ids are taken under the lock, which the commit itself releases. Of two
transactions recording events of the same app, the second takes its ids only after the first
has committed (or rolled back): within an app, event ids are in commit order. A reader whose
snapshot shows an event shows every event of the app with a smaller id, and an event committed
later gets a larger id than any it has seen, so a reader that follows its cursor gets every
committed event exactly once, whatever the interleaving. (PostgreSQL makes a commit visible
before it releases the transaction's locks, and a table's sequence hands out values in the
order they are asked for, ``CACHE 1`` being the default of a ``SERIAL`` column; a test checks
both sequences of the feeds.)

The feed lock is a transaction-scoped advisory lock, ``pg_advisory_xact_lock(FEED_LOCKS,
app_id)``: it needs no table, so no row-level security policy either, and PostgreSQL releases
it at commit or rollback, also when the connection dies. On SQLite nothing is locked: the
database's own write lock orders the writers.

Why this and not another commit-ordered key:

* The cursor stays the id. Cursors handed out before this existed keep their meaning exactly:
  nothing to translate or backfill, and ids are still never handed out twice.
* Nothing is written twice: stamping a commit sequence onto rows already inserted (a counter
  row bumped at commit) costs a second write of each row, under the counter's lock.
* Nothing waits for unrelated work: a horizon on transaction ids (``pg_snapshot_xmin`` with a
  safety lag) would hold back every app's feed for as long as the longest transaction anywhere
  in the database stays open, and turn the cursor into a pair.

The cost (measured by ``bench/feed_order.py``, figures in docs/webhooks.md): a unit of work
that recorded no event takes no lock. One that did takes one lock per app it recorded events
for (one statement for all of them), after all its other statements, and holds it while it
inserts its events and deliveries and commits: a few milliseconds, whatever the unit of work
did before. It waits only for commits of the same app that record events; apps never wait for
each other. Units of work that record events of several apps (the runner's consent sweep) take
the locks in ascending order, so two of them never wait for each other in a cycle, and a unit
holding a feed lock waits for nothing but its own inserts and commit.

The change log behind ``/v2/transaction/sync`` has the same need and a cheaper answer: its
writers lock the account's row, which a sync holds anyway (``accounts.changes``).

Units of work grouped into one SQLite transaction (``db.group``) write their queued events
when their savepoint ends, and a unit of work that fails leaves none behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

#: the first key of every feed lock (the second is the app's id): an arbitrary constant that
#: sets these locks apart from bankhub's other advisory locks, which use the one-key form
FEED_LOCKS = 0x62686664  # "bhfd"

Write = Callable[[AsyncSession], Awaitable[None]]

#: ``session.info`` key of the writes queued by the unit of work
_QUEUED = "bankhub.appends"
_LOCK = text(
    "SELECT count(pg_advisory_xact_lock(:space, app_id))"
    " FROM unnest(CAST(:apps AS integer[])) AS locked(app_id)"
)


@dataclass(slots=True)
class _Queued:
    apps: set[int] = field(default_factory=set)
    writes: list[Write] = field(default_factory=list)
    #: each write's app, in the writes' order
    apps_in_order: list[int] = field(default_factory=list)


def append(session: AsyncSession, app_id: int, write: Write) -> None:
    """Have ``write`` insert ``app_id``'s feed rows (events) when the unit of work commits,
    under the app's feed lock. Writes run in the order they were queued."""
    queued: _Queued = session.info.setdefault(_QUEUED, _Queued())
    queued.apps.add(app_id)
    queued.writes.append(write)
    queued.apps_in_order.append(app_id)


async def write_appends(session: AsyncSession) -> None:
    """Write the queued feed rows: the unit of work's other changes first, then, under the
    feed locks of the apps concerned (ascending), the queued writes in their order.

    The unit of work's owner calls this just before it commits; the locks last until then.
    """
    queued: _Queued | None = session.info.pop(_QUEUED, None)
    if queued is None:
        return
    # whatever else is still to be flushed is flushed outside the lock
    await session.flush()
    if session.bind.dialect.name == "postgresql":
        # one statement: the array's order is the order the locks are taken in
        await session.execute(_LOCK, {"space": FEED_LOCKS, "apps": sorted(queued.apps)})
    for write in queued.writes:
        await write(session)
    await session.flush()


#: the feed writes a unit of work queued, taken out of its session (``db.group``)
Appends = _Queued | None


def take_appends(session: AsyncSession) -> Appends:
    """Take the writes queued so far out of the session, to be put back later."""
    queued: _Queued | None = session.info.pop(_QUEUED, None)
    return queued


def put_appends(session: AsyncSession, taken: list[Appends]) -> None:
    """Queue again, in their order, writes taken by :func:`take_appends`: the group commit's
    batch writes the events of the units of work that succeeded when it commits."""
    for queued in taken:
        if queued is None:
            continue
        for app_id, write in zip(queued.apps_in_order, queued.writes, strict=True):
            append(session, app_id, write)


def drop_appends(session: AsyncSession) -> None:
    """Forget the queued writes of a unit of work that failed."""
    session.info.pop(_QUEUED, None)


def _unwritten(session: Session) -> None:
    if _QUEUED in session.info and not session.in_nested_transaction():
        raise RuntimeError(
            "a unit of work commits with events it never wrote; "
            "commit through Database.transaction (which calls write_appends first)"
        )


# A commit that would silently drop queued events fails instead.
event.listen(Session, "before_commit", _unwritten)
