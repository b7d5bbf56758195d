"""A bank that hangs holds one sync slot, never the others; concurrency stays within its bound."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select, update

from bankhub.jobs.runner import Runner
from bankhub.logins.models import Login
from bankhub.sync.models import SyncRun
from bankhub.sync.refresh import Claimed
from tests.api.connect_client import connect
from tests.conftest import Harness

#: the logins the runner synced (their connects are runs too, of kind ``connect``)
SCHEDULED_LOGINS = select(SyncRun.login_id).where(SyncRun.kind == "scheduled")


@pytest.mark.parametrize(
    "harness",
    [{"sandbox_slow_seconds": 0.05, "sync_concurrency": 2, "worker_poll_seconds": 0.05}],
    indirect=True,
)
async def test_a_hanging_bank_does_not_stall_other_logins(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    slow = await connect(h, "user_slow")  # mildly slow while the user connects
    quick = [await connect(h, "user_good") for _ in range(4)]
    h.hub.settings.sandbox_slow_seconds = 30.0  # now the bank hangs
    h.hub.settings.connector_timeout_seconds = 3.0
    async with h.hub.db.transaction() as session:
        await session.execute(update(Login).values(next_sync_at=h.clock()))

    runner = Runner(h.hub)
    in_flight = peak = 0
    original = runner.syncs.sync

    async def counted(app_id: int, login_id: int, claimed: Claimed | None = None) -> bool:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await original(app_id, login_id, claimed)
        finally:
            in_flight -= 1

    monkeypatch.setattr(runner.syncs, "sync", counted)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run_forever(stop))
    started = time.monotonic()
    quick_ids = {q["login_id"] for q in quick}
    while time.monotonic() - started < 10:
        async with h.hub.db.transaction() as session:
            done = set((await session.execute(SCHEDULED_LOGINS)).scalars())
        if quick_ids <= done:
            break
        await asyncio.sleep(0.05)
    quick_time = time.monotonic() - started
    while time.monotonic() - started < 10 and slow["login_id"] not in done:
        async with h.hub.db.transaction() as session:
            done = set((await session.execute(SCHEDULED_LOGINS)).scalars())
        await asyncio.sleep(0.05)
    stop.set()
    await task

    assert quick_ids <= done, "the other logins were not synced"
    assert quick_time < 3.0, f"the other logins waited for the hanging bank ({quick_time:.1f} s)"
    assert peak <= 2
    async with h.hub.db.transaction() as session:
        runs = {
            r.login_id: r
            for r in (
                await session.execute(select(SyncRun).where(SyncRun.kind == "scheduled"))
            ).scalars()
        }
        hung = await session.get(Login, slow["login_id"])
    assert runs[slow["login_id"]].outcome == "login_provider_unavailable"
    assert "did not answer in time" in (runs[slow["login_id"]].error or "")
    assert all(runs[i].outcome == "ok" for i in quick_ids)
    assert hung is not None
    assert hung.status == "provider_unavailable"
    assert hung.sync_lease_owner is None
