"""Leases: one configured length for every kind of work, renewed while the work goes on, given
up at once when the holder is known dead, and webhook attempts recorded from their start so that
one cut short shows as such.

The clock is injected: tests move it past a lease instead of waiting for one to lapse. The
heartbeats run in real time (every third of ``BANKHUB_LEASE_SECONDS``, 1 s here).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bankhub.clock import as_utc
from bankhub.jobs import identity, leases
from bankhub.jobs.runner import Runner
from bankhub.logins.models import Login
from bankhub.sync.models import SyncRun
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.jobs.test_outbox import add_endpoint
from tests.support.raw_http import Gate

SIXTY = timedelta(seconds=60)
SHORT = {"lease_seconds": 1, "sandbox_slow_seconds": 0.05, "worker_poll_seconds": 0.05}


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.02)


async def login_row(h: Harness, login_id: int) -> Login:
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, login_id)
    assert login is not None
    return login


async def delivery_rows(h: Harness) -> list[WebhookDelivery]:
    async with h.hub.db.transaction() as session:
        rows = await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))
        return list(rows.scalars())


async def event_log(h: Harness) -> list[dict[str, Any]]:
    """The attempt log of the app's latest event, as ``GET /v2/event/{id}`` shows it."""
    listed = (await h.client.get("/v2/event", headers=h.headers())).json()["data"]
    shown = await h.client.get(f"/v2/event/{listed[-1]['id']}", headers=h.headers())
    assert shown.status_code == 200, shown.text
    [delivery] = shown.json()["data"]["deliveries"]
    log: list[dict[str, Any]] = delivery["log"]
    return log


async def leased(h: Harness, login_id: int) -> bool:
    return (await login_row(h, login_id)).sync_lease_owner is not None


# --- one lease length, renewed ---------------------------------------------------------------


@pytest.mark.parametrize("harness", [{**SHORT, "lease_seconds": 30}], indirect=True)
async def test_a_manual_refresh_takes_the_configured_lease_under_the_process_identity(
    harness: Harness,
) -> None:
    h = harness
    slow = await connect(h, "user_slow")
    h.clock.advance(minutes=6)  # past the cool-down
    h.hub.settings.sandbox_slow_seconds = 30.0  # the bank keeps the refresh in flight
    refresh = asyncio.create_task(
        h.client.put("/v2/login/refresh", headers=h.headers(login_secret=slow["secret"]))
    )
    try:
        await eventually(lambda: leased(h, slow["login_id"]))
        login = await login_row(h, slow["login_id"])
    finally:
        refresh.cancel()
    assert login.sync_lease_until is not None
    assert as_utc(login.sync_lease_until) == h.clock() + timedelta(seconds=30)
    assert (login.sync_lease_owner or "").startswith(h.hub.lease_owner + "/")


@pytest.mark.parametrize("harness", [{**SHORT, "connector_timeout_seconds": 20.0}], indirect=True)
async def test_a_sync_that_loses_its_lease_stops_at_once_and_applies_nothing(
    harness: Harness,
) -> None:
    h = harness
    slow = await connect(h, "user_slow")
    h.clock.advance(minutes=6)
    h.hub.settings.sandbox_slow_seconds = 20.0
    refresh = asyncio.create_task(
        h.client.put("/v2/login/refresh", headers=h.headers(login_secret=slow["secret"]))
    )
    await eventually(lambda: leased(h, slow["login_id"]))
    async with h.hub.db.transaction() as session:
        runs_before = len((await session.execute(select(SyncRun))).scalars().all())
        # the lease lapsed and another process took the login over
        await session.execute(
            update(Login)
            .where(Login.id == slow["login_id"])
            .values(sync_lease_owner="elsewhere#1/run", sync_lease_until=h.clock() + SIXTY)
        )
    started = time.monotonic()
    answer = await asyncio.wait_for(refresh, 5.0)
    assert time.monotonic() - started < 2.0, "the fetch went on after the lease was lost"
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["refreshed"] is False
    login = await login_row(h, slow["login_id"])
    assert login.sync_lease_owner == "elsewhere#1/run"  # the new holder's, untouched
    async with h.hub.db.transaction() as session:
        assert len((await session.execute(select(SyncRun))).scalars().all()) == runs_before


@pytest.mark.parametrize("harness", [SHORT], indirect=True)
async def test_the_heartbeat_keeps_a_slow_delivery_past_its_lease(
    harness: Harness, gate: Gate
) -> None:
    h = harness
    await add_endpoint(h, gate.url)
    await connect(h, "user_good")
    stop = asyncio.Event()
    running = asyncio.create_task(Runner(h.hub, owner="one").run_forever(stop))
    try:
        await asyncio.wait_for(gate.arrived.wait(), 5)
        h.clock.advance(seconds=10)  # the claim's lease has lapsed ten times over

        async def renewed() -> bool:
            # a heartbeat (every third of the 1 s lease) carries the lease past the new now;
            # waited for rather than slept on: a loaded machine may delay a beat
            [row] = await delivery_rows(h)
            assert row.lease_owner == "one"
            return row.lease_until is not None and as_utc(row.lease_until) > h.clock()

        await eventually(renewed)
        assert await Runner(h.hub, owner="two").deliveries.claim_due(10) == []
        gate.opened.set()

        async def delivered() -> bool:
            return [d.status for d in await delivery_rows(h)] == ["delivered"]

        await eventually(delivered)
    finally:
        stop.set()
        await running
    assert [a["outcome"] for a in await event_log(h)] == ["delivered"]


# --- the attempt log ----------------------------------------------------------------------------


@pytest.mark.parametrize("harness", [SHORT], indirect=True)
async def test_an_attempt_is_in_the_log_from_its_start(harness: Harness, gate: Gate) -> None:
    h = harness
    await add_endpoint(h, gate.url)
    await connect(h, "user_good")
    runner = Runner(h.hub)
    start = h.clock()
    [job] = await runner.deliveries.claim_due(10)
    sending = asyncio.create_task(runner.deliveries.deliver(job))
    await asyncio.wait_for(gate.arrived.wait(), 5)
    # the request is at the receiver: its attempt is in the log already, as under way
    [under_way] = await event_log(h)
    assert under_way["outcome"] == "sending"
    assert under_way["status_code"] is None
    h.clock.advance(seconds=10)  # a receiver that takes ten seconds to answer
    gate.opened.set()
    assert await sending is True
    [done] = await event_log(h)
    assert done["attempted_at"] == under_way["attempted_at"]
    assert done["outcome"] == "delivered"
    assert done["status_code"] == 200
    async with h.hub.db.transaction() as session:
        [attempt] = (await session.execute(select(WebhookAttempt))).scalars().all()
    assert as_utc(attempt.attempted_at) == start  # when it started, not when it ended


@pytest.mark.parametrize("harness", [SHORT], indirect=True)
async def test_an_attempt_cut_when_its_lease_lapsed_shows_as_interrupted(
    harness: Harness, gate: Gate
) -> None:
    h = harness
    await add_endpoint(h, gate.url)
    await connect(h, "user_good")
    stalled = Runner(h.hub, owner="stalled")
    [job] = await stalled.deliveries.claim_due(10)
    # no heartbeat: only this attempt
    hanging = asyncio.create_task(stalled.deliveries.deliver(job))
    await asyncio.wait_for(gate.arrived.wait(), 5)
    h.clock.advance(seconds=5)  # its lease lapses
    taker = Runner(h.hub, owner="taker")
    [again] = await taker.deliveries.claim_due(10)
    assert await taker.deliveries.deliver(again) is True
    gate.opened.set()
    assert await hanging is False  # its late answer changes nothing
    log = await event_log(h)
    assert [a["outcome"] for a in log] == ["interrupted", "delivered"]
    assert "cut short" in (log[0]["error"] or "")
    [row] = await delivery_rows(h)
    assert (row.status, row.attempts, row.lease_owner) == ("delivered", 2, None)


# --- dead holders: a restart, a stop ----------------------------------------------------------


@pytest.mark.parametrize("harness", [{**SHORT, "lease_seconds": 300}], indirect=True)
async def test_a_restarted_process_takes_back_its_dead_leases_at_once(
    harness: Harness, gate: Gate
) -> None:
    h = harness
    me = identity.claim(h.hub.settings, "worker")
    try:
        dead = f"{me.name}#deadbeef"  # the same identity, an earlier incarnation
        stranger = await connect(h, "user_good")
        await add_endpoint(h, gate.url)
        mine = await connect(h, "user_good")
        # the predecessor was sending a delivery and syncing a login when it died
        predecessor = Runner(h.hub, owner=dead)
        [job] = await predecessor.deliveries.claim_due(10)
        cut = asyncio.create_task(predecessor.deliveries.deliver(job))
        await asyncio.wait_for(gate.arrived.wait(), 5)
        cut.cancel()
        async with h.hub.db.transaction() as session:
            until = h.clock() + timedelta(seconds=300)
            await session.execute(
                update(Login)
                .where(Login.id == mine["login_id"])
                .values(
                    next_sync_at=h.clock(), sync_lease_owner=f"{dead}/run", sync_lease_until=until
                )
            )
            # another process's lease is none of this one's business
            await session.execute(
                update(Login)
                .where(Login.id == stranger["login_id"])
                .values(
                    next_sync_at=h.clock(),
                    sync_lease_owner="otherhost:worker-0:0a1b2c3d#1/run",
                    sync_lease_until=until,
                )
            )

        stop = asyncio.Event()
        restarted = Runner(h.hub, identity=me)
        running = asyncio.create_task(restarted.run_forever(stop))
        try:

            async def resumed() -> bool:
                synced = (await login_row(h, mine["login_id"])).sync_lease_owner is None
                return synced and [d.status for d in await delivery_rows(h)][-1] == "delivered"

            await eventually(resumed)  # the clock never moved: no lease lapsed
        finally:
            stop.set()
            await running
        async with h.hub.db.transaction() as session:
            runs = (await session.execute(select(SyncRun.login_id, SyncRun.worker))).all()
        assert (mine["login_id"], me.owner) in runs
        other = await login_row(h, stranger["login_id"])
        assert other.sync_lease_owner == "otherhost:worker-0:0a1b2c3d#1/run"
        log = await event_log(h)
        assert [a["outcome"] for a in log] == ["interrupted", "delivered"]
    finally:
        me.release()


@pytest.mark.parametrize("harness", [{**SHORT, "lease_seconds": 300}], indirect=True)
async def test_a_stopping_runner_gives_back_what_it_leaves_unfinished(
    harness: Harness, gate: Gate
) -> None:
    h = harness
    await add_endpoint(h, gate.url)
    await connect(h, "user_good")
    stop = asyncio.Event()
    runner = Runner(h.hub)
    running = asyncio.create_task(runner.run_forever(stop))
    await asyncio.wait_for(gate.arrived.wait(), 5)
    stop.set()
    await running
    [row] = await delivery_rows(h)
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 1, None)
    assert [a["outcome"] for a in await event_log(h)] == [leases.INTERRUPTED]
    # due again at once for whoever runs next
    assert (await Runner(h.hub).run_once()).deliveries == 1
    assert [a["outcome"] for a in await event_log(h)] == ["interrupted", "delivered"]
