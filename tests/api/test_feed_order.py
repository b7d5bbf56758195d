"""A reader following ``next_cursor`` gets every committed row exactly once, whatever the
writers' interleaving: the event feed (``GET /v2/event``) and the transaction change log
(``/v2/transaction/sync``), on SQLite and on PostgreSQL as deployed (runtime role, row-level
security).

On PostgreSQL the interleaving that once lost rows is made on purpose. The test puts a trigger
on the feeds' tables (as the superuser, in the test's throwaway database) that makes an insert
wait for an advisory lock the test holds: a writer whose row carries the test's mark stops
right after its row took its id, with its transaction open. Other writers then commit, the
reader reads, and only then is the held writer let go. Were ids taken in any order, the held
writer's rows would commit below the reader's cursor and never be read. bankhub orders each
feed's writers instead: events get their ids at commit under the app's feed lock
(``db.commit_order``), so a later event of the same app waits for the held one; change-log rows
under their account's row lock (``accounts.changes``), so a purge of an account waits for the
sync that holds it.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from bankhub.connectors.base import AccountRecord, AccountType, TransactionRecord
from bankhub.customers import services as customers
from bankhub.db import tenancy
from bankhub.events import services as events
from bankhub.lifecycle import retention
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.sync.engine import FetchedAccount, FetchResult
from tests.api.connect_client import connect
from tests.conftest import FakeClock, Harness, make_settings, run_harness

T = TypeVar("T")
SEED = 20261120
#: the first key of the advisory locks the test holds writers with
HOLD = 0x686F6C64
#: the second key that holds change-log rows of each kind
HOLD_KIND = {"added": -1, "modified": -2, "removed": -3}
#: the longest any wait of this test may take
PATIENCE = 20.0

TRIGGER = (
    f"""
CREATE FUNCTION feed_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'events' THEN
        IF NEW.payload->>'hold' IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock_shared({HOLD}, (NEW.payload->>'hold')::integer);
        END IF;
        IF NEW.payload->>'fail' IS NOT NULL THEN
            RAISE EXCEPTION 'refused by the test';
        END IF;
    ELSE
        PERFORM pg_advisory_xact_lock_shared(
            {HOLD},
            CASE NEW.kind WHEN 'added' THEN -1 WHEN 'modified' THEN -2 ELSE -3 END
        );
    END IF;
    RETURN NULL;
END $$
""",
    "CREATE TRIGGER feed_test_hold AFTER INSERT ON events"
    " FOR EACH ROW EXECUTE FUNCTION feed_test_hold()",
    "CREATE TRIGGER feed_test_hold AFTER INSERT ON transaction_changes"
    " FOR EACH ROW EXECUTE FUNCTION feed_test_hold()",
)
#: lock requests waiting, of connections to the test's database (a row lock is waited for on
#: the holder's transaction id, a lock of no database)
WAITING = text(
    "SELECT count(*) FROM pg_locks WHERE NOT granted"
    " AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
)


class Holds:
    """The test's hand on PostgreSQL writers: a superuser connection of its own that holds the
    advisory locks the trigger waits for, and sees who waits for a lock."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def take(self, key: int) -> None:
        await self.connection.execute(
            text("SELECT pg_advisory_lock(:a, :b)"), {"a": HOLD, "b": key}
        )

    async def release(self, key: int) -> None:
        await self.connection.execute(
            text("SELECT pg_advisory_unlock(:a, :b)"), {"a": HOLD, "b": key}
        )

    async def waiting(self) -> int:
        return int((await self.connection.execute(WAITING)).scalar_one())

    async def settle(self, tasks: list[asyncio.Task[Any]], held: int) -> None:
        """Until each of ``tasks`` has either finished or waits for a lock (besides the
        ``held`` transactions, which wait for the test)."""
        deadline = time.monotonic() + PATIENCE
        while (await self.waiting()) != held + sum(not t.done() for t in tasks):
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise AssertionError("a writer failed") from task.exception()
            assert time.monotonic() < deadline, "writers neither finished nor waited"
            await asyncio.sleep(0.005)


@dataclass
class Feeds:
    h: Harness
    #: PostgreSQL: the test's hand on writers; None on SQLite, where one writer at a time
    #: leaves no interleaving to force
    holds: Holds | None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def feeds(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Feeds]:
    if request.param == "sqlite":
        target = tmp_path / "bankhub.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{target}")
        async for h in run_harness(settings, clock, migrated=True):
            yield Feeds(h, None)
        return
    roles = request.getfixturevalue("postgres_roles")
    settings = make_settings(tmp_path, roles.app_url, migration_database_url=roles.owner_url)
    async for h in run_harness(settings, clock, app_role=roles.app):
        admin = create_async_engine(roles.superuser_url, poolclass=NullPool)
        try:
            async with admin.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                for statement in TRIGGER:
                    await autocommit.exec_driver_sql(statement)
                yield Feeds(h, Holds(autocommit))
        finally:
            await admin.dispose()


async def app_id_of(h: Harness, client_id: str) -> int:
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            found = await session.execute(select(App.id).where(App.client_id == client_id))
            return int(found.scalar_one())


def headers_of(creds: dict[str, str]) -> dict[str, str]:
    return {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}


@dataclass
class Reader:
    """A partner following ``next_cursor`` through ``GET /v2/event``, a few events a page."""

    h: Harness
    headers: dict[str, str]
    cursor: str = ""
    refs: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    async def read(self) -> None:
        while True:
            response = await self.h.client.get(
                "/v2/event", params={"cursor": self.cursor, "limit": "3"}, headers=self.headers
            )
            assert response.status_code == 200, response.text
            body = response.json()
            self.refs += [event["payload"]["ref"] for event in body["data"]]
            self.ids += [event["id"] for event in body["data"]]
            self.cursor = body["next_cursor"] or self.cursor
            if not body["has_more"]:
                return


class Refused(Exception):
    """A writer steps back: its unit of work rolls back."""


COMMIT, ROLLBACK, FAIL = "commit", "rollback", "fail"


async def write(
    h: Harness,
    app_id: int,
    refs: list[str],
    *,
    extra: int = 0,
    outcome: str = COMMIT,
    hold: int | None = None,
) -> list[str]:
    """One unit of work recording an event per ref (with ``extra`` statements after each);
    the refs that committed. ``hold``: its first event waits for the test's lock of that key
    once it has its id. ``FAIL``: the database refuses its last event (after the ids were
    taken); ``ROLLBACK``: it steps back before committing."""
    try:
        with tenancy.acting_for(app_id):
            async with h.hub.db.transaction() as session:
                for n, ref in enumerate(refs):
                    payload: dict[str, Any] = {"ref": ref}
                    if hold is not None and n == 0:
                        payload["hold"] = hold
                    if outcome == FAIL and n == len(refs) - 1:
                        payload["fail"] = True
                    await events.record(
                        session,
                        app_id=app_id,
                        type=events.LOGIN_STATUS,
                        payload=payload,
                        now=h.clock(),
                    )
                    for _ in range(extra):
                        await session.execute(text("SELECT 1"))
                if outcome == ROLLBACK:
                    raise Refused
    except Refused:
        return []
    except DBAPIError as exc:
        if outcome != FAIL or "refused by the test" not in str(exc):
            raise
        return []
    return refs


async def stored_refs(h: Harness) -> list[str]:
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            rows = await session.execute(text("SELECT payload FROM events ORDER BY id"))
            return [_payload(p)["ref"] for (p,) in rows if "ref" in _payload(p)]


def _payload(value: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
    return loaded


def run(awaitable: Awaitable[T]) -> asyncio.Task[T]:
    return asyncio.ensure_future(awaitable)


async def test_a_reader_following_the_cursor_gets_every_committed_event_once(
    feeds: Feeds,
) -> None:
    h, holds = feeds.h, feeds.holds
    rng = random.Random(SEED)
    first = await app_id_of(h, h.creds["client_id"])
    other_creds = await h.new_app("other")
    other = await app_id_of(h, other_creds["client_id"])
    readers = {first: Reader(h, h.headers()), other: Reader(h, headers_of(other_creds))}
    committed: dict[int, list[list[str]]] = {first: [], other: []}
    numbers = iter(range(1, 1_000_000))

    def refs_of(app_id: int, count: int) -> list[str]:
        return [f"{app_id}-{next(numbers)}" for _ in range(count)]

    # 1. The interleaving that loses an event when ids are taken at insert: a transaction holds
    # its (low) id open, a later one of the same app commits, the reader reads, and only then
    # does the first commit. Meanwhile another app's writer is never held up.
    if holds is not None:
        await holds.take(1)
        held = run(write(h, first, refs_of(first, 2), hold=1))
        await holds.settle([], held=1)
        later = run(write(h, first, refs_of(first, 1)))
        elsewhere = run(write(h, other, refs_of(other, 1)))
        await holds.settle([later, elsewhere], held=1)
        assert elsewhere.done(), "a writer of another app waited for this app's transaction"
        await readers[first].read()
        await holds.release(1)
        for task in (held, later, elsewhere):
            refs = await task
            committed[first if refs[0].startswith(f"{first}-") else other].append(refs)
        await readers[first].read()

    # 2. Rounds of random writers of both apps: transactions of random sizes and lengths, some
    # rolled back, some refused by the database after their ids were taken, one of them held
    # open each round while the others run and both readers read.
    outcomes = [COMMIT, COMMIT, COMMIT, ROLLBACK] + ([FAIL] if holds is not None else [])
    for key in range(2, 10):
        held_task: asyncio.Task[list[str]] | None = None
        if holds is not None:
            await holds.take(key)
            app_id = rng.choice([first, other])
            held_task = run(write(h, app_id, refs_of(app_id, rng.randint(1, 3)), hold=key))
            await holds.settle([], held=1)
        burst: list[asyncio.Task[list[str]]] = []
        for _ in range(rng.randint(2, 5)):
            app_id = rng.choice([first, other])
            burst.append(
                run(
                    write(
                        h,
                        app_id,
                        refs_of(app_id, rng.randint(1, 3)),
                        extra=rng.randint(0, 3),
                        outcome=rng.choice(outcomes),
                    )
                )
            )
        if holds is not None:
            await holds.settle(burst, held=1)
        for reader in rng.sample(list(readers.values()), 2):
            await reader.read()
        if holds is not None:
            await holds.release(key)
        for task in [held_task, *burst] if held_task else burst:
            refs = await task
            if refs:
                committed[int(refs[0].split("-")[0])].append(refs)
        await readers[rng.choice([first, other])].read()

    for app_id, reader in readers.items():
        await reader.read()
        everything = [ref for refs in committed[app_id] for ref in refs]
        # every committed event exactly once, and nothing that was rolled back
        assert len(reader.refs) == len(set(reader.refs)), "an event was read twice"
        assert sorted(reader.refs) == sorted(everything), "an event was skipped or invented"
        assert reader.ids == sorted(reader.ids)
        # a transaction's events come together, in the order it recorded them
        for refs in committed[app_id]:
            start = reader.refs.index(refs[0])
            assert reader.refs[start : start + len(refs)] == refs
    # and the database holds exactly the committed ones
    assert sorted(await stored_refs(h)) == sorted(
        ref for app_refs in committed.values() for refs in app_refs for ref in refs
    )
    assert sum(len(refs) for refs in committed[first]) > 10
    assert sum(len(refs) for refs in committed[other]) > 10


# --- the transaction change log -----------------------------------------------------------------

ACCOUNT = AccountRecord(
    bank_id="feed-account",
    name="Everyday",
    type=AccountType.CURRENT,
    currency="EUR",
    balance=Decimal("100.00"),
)


SAVINGS = AccountRecord(
    bank_id="feed-savings",
    name="Savings",
    type=AccountType.SAVINGS,
    currency="EUR",
    balance=Decimal("5.00"),
)


def records(prefix: str, day: date, count: int) -> list[TransactionRecord]:
    return [
        TransactionRecord(
            bank_id=f"{prefix}-{n}",
            booking_date=day,
            amount=Decimal(-n - 1),
            currency="EUR",
            description=f"{prefix} payment {n}",
        )
        for n in range(count)
    ]


@dataclass
class ChangeReader:
    """A partner following ``next_cursor`` through ``/v2/transaction/sync``."""

    h: Harness
    secret: str
    account_id: int
    cursor: str = ""
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)

    async def read(self) -> None:
        while True:
            response = await self.h.client.get(
                "/v2/transaction/sync",
                params={"account_id": self.account_id, "cursor": self.cursor, "count": "7"},
                headers=self.h.headers(login_secret=self.secret),
            )
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            self.added += [row["id"] for row in data["added"]]
            self.removed += [row["id"] for row in data["removed"]]
            self.cursor = data["next_cursor"]
            if not data["has_more"]:
                return


async def test_a_sync_and_a_purge_of_one_account_never_hide_changes_from_the_reader(
    feeds: Feeds,
) -> None:
    """A purge of an account runs while a sync of it holds its change-log rows open (their ids
    taken, not yet committed) and the reader reads: the reader still gets every change once.
    Logging without the account's row lock, the purge's ``removed`` rows would commit first
    and the reader would move past the sync's rows."""
    h, holds = feeds.h, feeds.holds
    app_id = await app_id_of(h, h.creds["client_id"])
    today = h.clock().date()
    with tenancy.acting_for(app_id):
        async with h.hub.db.transaction() as session:
            app = await session.get(App, app_id)
            assert app is not None
            customer = await customers.create_customer(session, h.clock, app, "feed-order")
            login, secret = logins.add_login(
                session,
                h.hub.hasher,
                h.clock(),
                app_id=app_id,
                customer_id=customer.id,
                service_id=1,
            )
            await session.flush()
            history = FetchResult(
                [FetchedAccount(ACCOUNT, records("old", today - timedelta(days=40), 30))],
                None,
                {},
                None,
            )
            summary = await h.hub.engine.apply(session, login, history)
            login_id, account_id = login.id, summary.account_ids[0]
    reader = ChangeReader(h, secret, account_id)
    await reader.read()
    old = set(reader.added)
    assert len(old) == 30
    reader.added.clear()
    # Two hours later a row of another account arrives: it stays, so that the table's newest
    # rows are never all purged (SQLite would hand out their ids again).
    h.clock.advance(hours=2)
    with tenancy.acting_for(app_id):
        async with h.hub.db.transaction() as session:
            again = await session.get(Login, login_id, with_for_update=True)
            assert again is not None
            kept = FetchResult(
                [
                    FetchedAccount(ACCOUNT, []),
                    FetchedAccount(SAVINGS, records("kept", today - timedelta(days=1), 1)),
                ],
                None,
                {},
                None,
            )
            await h.hub.engine.apply(session, again, kept)

    # A day after the first sync its rows are past the app's window (24 h): a purge removes
    # them while a sync stores new ones.
    h.clock.advance(hours=23)

    async def sync() -> None:
        with tenancy.acting_for(app_id):
            async with h.hub.db.transaction() as session:
                login = await session.get(Login, login_id, with_for_update=True)
                assert login is not None
                fresh = FetchResult(
                    [FetchedAccount(ACCOUNT, records("new", h.clock().date(), 12))],
                    None,
                    {},
                    None,
                )
                done = await h.hub.engine.apply(session, login, fresh)
                assert done.inserted == 12

    async def purge() -> None:
        with tenancy.everything():
            report = await retention.purge(h.hub.db, h.clock)
        assert not report.failed

    if holds is not None:
        await holds.take(HOLD_KIND["added"])
        syncing = run(sync())
        await holds.settle([], held=1)
        purging = run(purge())
        await holds.settle([purging], held=1)
        await reader.read()
        await holds.release(HOLD_KIND["added"])
        await syncing
        await purging
    else:
        syncing, purging = run(sync()), run(purge())
        await reader.read()
        await asyncio.gather(syncing, purging)
    await reader.read()

    with tenancy.acting_for(app_id):
        async with h.hub.db.transaction() as session:
            found = await session.execute(
                text("SELECT id FROM transactions WHERE account_id = :a"), {"a": account_id}
            )
            new = {int(i) for (i,) in found}
    assert len(new) == 12
    assert sorted(reader.added) == sorted(new), "the sync's changes were skipped"
    assert sorted(reader.removed) == sorted(old), "the purge's changes were skipped"


# --- a deleted login's events -------------------------------------------------------------------


async def feed_after(h: Harness, cursor: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        response = await h.client.get(
            "/v2/event", params={"cursor": cursor, "limit": "2"}, headers=h.headers()
        )
        assert response.status_code == 200, response.text
        body = response.json()
        got += body["data"]
        cursor = body["next_cursor"] or cursor
        if not body["has_more"]:
            return got


async def test_a_deleted_login_s_events_leave_the_feed_and_cursors_keep_working(
    harness: Harness,
) -> None:
    """What docs/webhooks.md says of an erased login's events: they leave the feed (and their
    own address), a ``login.deleted`` event follows at the end, the other logins' events stay,
    and every cursor handed out before, even one that named an erased event, reads on."""
    h = harness
    erased = await connect(h, "user_good")
    kept = await connect(h, "user_good")
    app_id = await app_id_of(h, h.creds["client_id"])
    for login in (erased, kept):  # each login's events interleaved with the other's
        with tenancy.acting_for(app_id):
            async with h.hub.db.transaction() as session:
                await events.record(
                    session,
                    app_id=app_id,
                    login_id=login["login_id"],
                    type=events.LOGIN_STATUS,
                    payload=events.login_status_payload(login["login_id"], "success"),
                    now=h.clock(),
                )
    before = await feed_after(h, "")
    erased_events = [e for e in before if e["login_id"] == erased["login_id"]]
    assert len(erased_events) >= 2
    end = str(before[-1]["id"])
    inside = str(erased_events[0]["id"])  # a cursor naming an event about to be erased

    response = await h.client.delete("/v2/login", headers=h.headers(login_secret=erased["secret"]))
    assert response.status_code == 200, response.text

    after = await feed_after(h, "")
    assert [e for e in after if e["login_id"] == erased["login_id"]] == []
    assert [e for e in after if e["type"] != "login.deleted"] == [
        e for e in before if e["login_id"] != erased["login_id"]
    ]
    notice = after[-1]
    assert notice["type"] == "login.deleted"
    assert notice["login_id"] is None
    assert notice["payload"] == {
        "login_id": erased["login_id"],
        "deleted": True,
        "event_type": "login.deleted",
    }
    assert notice["id"] > before[-1]["id"]
    # a reader at the end of the feed reads only the notice; one whose cursor named an erased
    # event reads on from there: the kept login's later events, then the notice
    assert await feed_after(h, end) == [notice]
    assert await feed_after(h, inside) == [e for e in after if e["id"] > int(inside)]
    assert {e["login_id"] for e in (await feed_after(h, inside))[:-1]} == {kept["login_id"]}
    for event in erased_events:
        gone = await h.client.get(f"/v2/event/{event['id']}", headers=h.headers())
        assert gone.status_code == 404
