"""PostgreSQL: a commit that queued work (a delivery, an outbox message, leases given back) wakes
the runners of every process (LISTEN/NOTIFY), only once it is committed, and a runner whose
listening connection dies listens again.

"Another process" is a second ``Database`` over the same database: its own engine and pool, and
no outbox listener, so the runner under test hears of its commits through PostgreSQL only. The
runner polls every 30 s: anything faster than that is the notification's doing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # ships no type hints
import pytest
from sqlalchemy import select, text

from bankhub.db import tenancy
from bankhub.db.engine import WORK_CHANNEL, Database
from bankhub.events import services as events
from bankhub.jobs import leases, outbox, wakeup
from bankhub.jobs.runner import Runner
from bankhub.partners.models import App
from bankhub.webhooks.models import WebhookDelivery
from tests.conftest import Harness
from tests.jobs.test_outbox import add_endpoint
from tests.support.raw_http import Gate

SLOW_POLL = {"worker_poll_seconds": 30.0}


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: SQLite runs in one process, whose runner is woken in-process."""
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    peer = await Gate(held=0).start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest.fixture
async def elsewhere(harness: Harness) -> AsyncIterator[Database]:
    other = Database(harness.hub.db.url)
    try:
        yield other
    finally:
        await other.dispose()


async def eventually(check: Callable[[], Awaitable[bool] | bool], seconds: float = 5.0) -> float:
    started = time.monotonic()
    while True:
        done = check()
        if not isinstance(done, bool):
            done = await done
        if done:
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.005)


async def queue_event(h: Harness, db: Database, *, then_fail: bool = False) -> None:
    """An event with its delivery, committed as any process's unit of work commits it (or,
    ``then_fail``, rolled back by a failure after it was queued)."""
    with tenancy.everything():
        async with db.transaction() as session:
            app = (
                await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
            ).scalar_one()
            await events.record(
                session,
                app_id=app.id,
                type=events.NEW_TRANSACTIONS,
                payload=events.new_transactions_payload(1, h.clock(), [1], 1),
                now=h.clock(),
            )
            if then_fail:
                raise RuntimeError("rolled back")


async def delivered(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        rows = await session.execute(
            select(WebhookDelivery.id).where(WebhookDelivery.status == "delivered")
        )
        return len(rows.all())


@pytest.mark.parametrize("harness", [SLOW_POLL], indirect=True)
async def test_a_commit_in_another_process_wakes_the_runner_at_once(
    harness: Harness, gate: Gate, elsewhere: Database
) -> None:
    h = harness
    await add_endpoint(h, gate.url)
    runner = Runner(h.hub)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run_forever(stop))
    try:
        await eventually(lambda: runner.listens == 1)
        waits = []
        for sent in range(1, 4):
            await queue_event(h, elsewhere)
            waits.append(await eventually(lambda: gate.count == sent, 5.0))  # noqa: B023

        async def all_delivered() -> bool:
            return await delivered(h) == 3

        await eventually(all_delivered)
    finally:
        stop.set()
        await running
    assert max(waits) < 1.0, waits  # against a 30 s poll


@pytest.mark.parametrize("harness", [SLOW_POLL], indirect=True)
async def test_work_is_announced_only_once_committed(harness: Harness, elsewhere: Database) -> None:
    h = harness
    heard: list[str] = []
    listener = await asyncpg.connect(**wakeup.connect_args(h.hub.db.engine))
    try:
        # (connection, pid, channel, payload): the payload names the kinds of work queued
        await listener.add_listener(WORK_CHANNEL, lambda *args: heard.append(args[3]))
        await add_endpoint(h, "http://127.0.0.1:9/hooks")
        with pytest.raises(RuntimeError):
            await queue_event(h, elsewhere, then_fail=True)
        # a unit of work that queued nothing announces nothing
        async with elsewhere.transaction() as session:
            await session.execute(text("SELECT 1"))
        await asyncio.sleep(0.3)
        assert heard == []
        await queue_event(h, elsewhere)
        await eventually(lambda: heard == ["deliveries"], 2.0)
        await queue_note(elsewhere, h, "hello")
        await eventually(lambda: heard == ["deliveries", "outbox"], 2.0)
    finally:
        await listener.close()


@pytest.mark.parametrize("harness", [SLOW_POLL], indirect=True)
async def test_a_runner_listens_again_after_its_connection_is_killed(
    harness: Harness, gate: Gate, elsewhere: Database
) -> None:
    h = harness
    await add_endpoint(h, gate.url)
    runner = Runner(h.hub)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run_forever(stop))
    try:
        await eventually(lambda: runner.listens == 1)
        async with elsewhere.engine.connect() as connection:
            # the runner's listener only (the authentication cache listens on its own channel)
            killed = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE query LIKE :listen AND datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                ),
                {"listen": f"LISTEN%{WORK_CHANNEL}%"},
            )
        assert killed == 1
        await eventually(lambda: runner.listens == 2, 5.0)
        await queue_event(h, elsewhere)
        woken = await eventually(lambda: gate.count == 1, 5.0)
    finally:
        stop.set()
        await running
    assert woken < 1.0


# --- the outbox, and leases given back --------------------------------------------------------

NOTE = "test.note"


async def queue_note(db: Database, h: Harness, text_: str) -> None:
    async with db.transaction() as session:
        outbox.enqueue(session, NOTE, {"text": text_}, h.clock())


@pytest.mark.parametrize("harness", [SLOW_POLL], indirect=True)
async def test_a_message_queued_in_another_process_is_sent_at_once(
    harness: Harness, elsewhere: Database
) -> None:
    h = harness
    runner = Runner(h.hub)
    heard: list[str] = []

    async def note(payload: Mapping[str, Any]) -> None:
        heard.append(str(payload["text"]))

    runner.outbox.handlers[NOTE] = note
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run_forever(stop))
    try:
        await eventually(lambda: runner.listens == 1)
        await queue_note(elsewhere, h, "hello")
        woken = await eventually(lambda: heard == ["hello"], 5.0)
    finally:
        stop.set()
        await running
    assert woken < 1.0  # against a 30 s poll


@pytest.mark.parametrize("harness", [{**SLOW_POLL, "lease_seconds": 300}], indirect=True)
async def test_leases_given_back_in_another_process_wake_the_runner_at_once(
    harness: Harness, elsewhere: Database
) -> None:
    """A process that stops gives back its leases (``jobs.leases``): the work is due again at
    once, and the runners of the other processes hear of it."""
    h = harness
    await queue_note(h.hub.db, h, "left behind")
    gone = Runner(h.hub, owner="stopping-process")
    gone.outbox.handlers[NOTE] = note_nothing
    [_claimed] = await gone.outbox.claim_due(1)  # leased for 300 s; its process stops

    runner = Runner(h.hub)
    heard: list[str] = []

    async def note(payload: Mapping[str, Any]) -> None:
        heard.append(str(payload["text"]))

    runner.outbox.handlers[NOTE] = note
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run_forever(stop))
    try:
        await eventually(lambda: runner.listens == 1)
        await asyncio.sleep(0.3)
        assert heard == []  # leased elsewhere
        with tenancy.everything():
            released = await leases.release_own(elsewhere, "stopping-process")
        assert released.messages == 1
        woken = await eventually(lambda: heard == ["left behind"], 5.0)
    finally:
        stop.set()
        await running
    assert woken < 1.0  # against a 30 s poll


async def note_nothing(payload: Mapping[str, Any]) -> None:
    raise AssertionError("never sent by the process that stops")
