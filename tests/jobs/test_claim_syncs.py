"""Claiming due syncs in batches: one statement claims them all, each login to one runner only,
and only logins that are due, active, retryable and not leased."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import select, update

from bankhub.db import tenancy
from bankhub.jobs.runner import Runner
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.sync.source import ARCHIVED_PAUSE, CRASH_BACKOFF
from tests.api.connect_client import connect
from tests.conftest import Harness


async def make_due(h: Harness, count: int) -> list[int]:
    ids = [int((await connect(h, "user_good"))["login_id"]) for _ in range(count)]
    async with h.hub.db.transaction() as session:
        await session.execute(update(Login).values(next_sync_at=h.clock()))
    return ids


async def leases(h: Harness) -> dict[int, tuple[str | None, object]]:
    async with h.hub.db.transaction() as session:
        rows = await session.execute(
            select(Login.id, Login.sync_lease_owner, Login.next_sync_at).order_by(Login.id)
        )
        return {int(i): (owner, at) for i, owner, at in rows}


async def test_two_runners_never_claim_the_same_login(harness: Harness) -> None:
    h = harness
    ids = await make_due(h, 6)
    one, two = Runner(h.hub, owner="one"), Runner(h.hub, owner="two")
    with tenancy.everything():
        first, second = await asyncio.gather(one.syncs.claim_due(4), two.syncs.claim_due(4))
    got = [c.login_id for c in first] + [c.login_id for c in second]
    assert sorted(got) == sorted(ids)  # all six, none twice
    assert len(first) <= 4
    assert len(second) <= 4
    held = await leases(h)
    for claimed in first:
        assert held[claimed.login_id][0] == claimed.token
        assert claimed.token.startswith("one/")
        assert claimed.state  # the connector state was read with the claim
    for claimed in second:
        assert held[claimed.login_id][0] == claimed.token
        assert claimed.token.startswith("two/")
    with tenancy.everything():
        assert await one.syncs.claim_due(10) == []  # all leased now


async def test_only_due_active_retryable_unleased_logins_are_claimed(harness: Harness) -> None:
    h = harness
    due, later, inactive, waiting, leased = await make_due(h, 5)
    async with h.hub.db.transaction() as session:
        for login_id, values in (
            (later, {"next_sync_at": h.clock() + CRASH_BACKOFF}),
            (inactive, {"active": False}),
            (waiting, {"status": "wrong_credentials"}),
            (leased, {"sync_lease_owner": "other", "sync_lease_until": h.clock() + CRASH_BACKOFF}),
        ):
            await session.execute(update(Login).where(Login.id == login_id).values(**values))
    runner = Runner(h.hub, owner="one")
    with tenancy.everything():
        claimed = await runner.syncs.claim_due(10)
    assert [c.login_id for c in claimed] == [due]
    # lapsed leases (the other runner's, and the one just taken) are free again
    h.clock.advance(seconds=CRASH_BACKOFF.total_seconds() + 1)
    with tenancy.everything():
        again = await Runner(h.hub, owner="two").syncs.claim_due(10)
    assert sorted(c.login_id for c in again) == sorted([due, later, leased])


async def test_a_login_whose_service_is_gone_is_pushed_back(harness: Harness) -> None:
    h = harness
    gone, kept = await make_due(h, 2)
    async with h.hub.db.transaction() as session:
        await session.execute(update(Login).where(Login.id == gone).values(service_id=999_999))
    runner = Runner(h.hub, owner="one")
    with tenancy.everything():
        claimed = await runner.syncs.claim_due(10)
    assert [c.login_id for c in claimed] == [kept]
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, gone)
    assert login is not None
    assert login.sync_lease_owner is None
    assert login.sync_lease_until is None
    assert login.next_sync_at is not None
    pushed = login.next_sync_at.replace(tzinfo=None) - h.clock().replace(tzinfo=None)
    assert pushed == CRASH_BACKOFF


async def test_the_logins_of_an_archived_app_are_not_refreshed_until_it_is_restored(
    harness: Harness,
) -> None:
    """An archived app's keys are refused, so nobody could read what a refresh fetched: its
    logins' banks are not asked. Each due login is pushed back by ARCHIVED_PAUSE; once the app
    is restored they are claimed again."""
    h = harness
    ids = await make_due(h, 2)
    async with h.hub.db.transaction() as session:
        await session.execute(
            update(App).where(App.client_id == h.creds["client_id"]).values(archived_at=h.clock())
        )
    runner = Runner(h.hub, owner="one")
    with tenancy.everything():
        assert await runner.syncs.claim_due(10) == []
    held = await leases(h)
    for login_id in ids:
        owner, at = held[login_id]
        assert owner is None
        assert isinstance(at, datetime)
        assert at.replace(tzinfo=None) - h.clock().replace(tzinfo=None) == ARCHIVED_PAUSE

    async with h.hub.db.transaction() as session:
        await session.execute(
            update(App).where(App.client_id == h.creds["client_id"]).values(archived_at=None)
        )
    with tenancy.everything():
        assert await runner.syncs.claim_due(10) == []  # not due again yet
    h.clock.advance(seconds=ARCHIVED_PAUSE.total_seconds())
    with tenancy.everything():
        claimed = await runner.syncs.claim_due(10)
    assert sorted(c.login_id for c in claimed) == sorted(ids)
