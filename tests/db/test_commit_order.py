"""Events are written when their unit of work commits (``db.commit_order``): grouped units of
work write theirs in their own savepoints, a commit that would drop them refuses, and the feeds'
ids come from counters that hand them out in the order asked."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import tenancy
from bankhub.db.group import GroupCommit, Work
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.partners.models import App
from tests.conftest import Harness


class Refused(Exception):
    pass


async def app_id_of(h: Harness) -> int:
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            found = await session.execute(
                select(App.id).where(App.client_id == h.creds["client_id"])
            )
            return int(found.scalar_one())


async def feed(h: Harness) -> list[str]:
    response = await h.client.get("/v2/event", params={"limit": "500"}, headers=h.headers())
    assert response.status_code == 200, response.text
    return [event["payload"]["ref"] for event in response.json()["data"]]


@pytest.mark.parametrize("by_app", [False, True])
async def test_grouped_units_of_work_write_their_events_only_when_they_succeed(
    harness: Harness, by_app: bool
) -> None:
    """On SQLite, and on PostgreSQL for units of work given their app, the units of work share
    one transaction, a savepoint each: a unit that fails after recording events leaves none of
    them, and takes none of the others' with it."""
    h = harness
    app_id = await app_id_of(h)
    grouped = GroupCommit(h.hub.db)

    def work(n: int, *, fail: bool) -> Work[int]:
        async def run(session: AsyncSession) -> int:
            for part in ("a", "b"):
                await events.record(
                    session,
                    app_id=app_id,
                    type=events.LOGIN_STATUS,
                    payload={"ref": f"{n}{part}"},
                    now=h.clock(),
                )
            if fail:
                raise Refused(n)
            return n

        return run

    with tenancy.acting_for(app_id):
        results = await asyncio.gather(
            *(
                grouped.run(work(n, fail=n in (3, 6)), app_id=app_id if by_app else None)
                for n in range(1, 7)
            ),
            return_exceptions=True,
        )
    assert [r if not isinstance(r, Refused) else "refused" for r in results] == [
        1,
        2,
        "refused",
        4,
        5,
        "refused",
    ]
    read = await feed(h)
    assert sorted(read) == ["1a", "1b", "2a", "2b", "4a", "4b", "5a", "5b"]
    # each unit of work's events together, in the order it recorded them (on PostgreSQL the
    # units of work commit on their own, in whatever order they finish)
    assert all(read[i][0] == read[i + 1][0] for i in range(0, len(read), 2))
    assert all(read[i].endswith("a") for i in range(0, len(read), 2))


async def test_a_commit_that_would_drop_recorded_events_refuses(harness: Harness) -> None:
    """Events are inserted by ``Database.transaction`` just before it commits; a session
    committed some other way would lose them silently, so its commit fails instead."""
    h = harness
    app_id = await app_id_of(h)
    with tenancy.everything():
        async with AsyncSession(h.hub.db.engine) as session:
            await events.record(
                session, app_id=app_id, type=events.LOGIN_STATUS, payload={}, now=h.clock()
            )
            with pytest.raises(RuntimeError, match="never wrote"):
                await session.commit()
        async with h.hub.db.transaction() as session:
            assert (await session.execute(select(func.count(Event.id)))).scalar_one() == 0


async def test_the_feeds_ids_are_handed_out_in_the_order_asked(harness: Harness) -> None:
    """The feeds' ordering rests on it: on PostgreSQL their sequences cache no values per
    connection (``CACHE 1``), so a value asked for later is larger; on SQLite ids are never
    handed out again (AUTOINCREMENT)."""
    h = harness
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            if h.hub.db.dialect == "postgresql":
                found = await session.execute(
                    text(
                        "SELECT sequencename, cache_size FROM pg_sequences"
                        " WHERE sequencename IN ('events_id_seq', 'transaction_changes_id_seq')"
                    )
                )
                assert dict(found.tuples().all()) == {
                    "events_id_seq": 1,
                    "transaction_changes_id_seq": 1,
                }
            else:
                found = await session.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master"
                        " WHERE name IN ('events', 'transaction_changes')"
                    )
                )
                tables = dict(found.tuples().all())
                assert set(tables) == {"events", "transaction_changes"}
                assert all("AUTOINCREMENT" in sql.upper() for sql in tables.values())
