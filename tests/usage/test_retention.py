"""Usage rows older than the usage retention are purged by the retention sweep."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bankhub.jobs.runner import Runner
from bankhub.lifecycle import retention
from bankhub.partners.models import App
from bankhub.usage import store
from bankhub.usage.models import UsageCount
from tests.conftest import Harness


async def hours_kept(h: Harness) -> list[datetime]:
    async with h.hub.db.transaction() as session:
        return sorted((await session.execute(select(UsageCount.hour))).scalars())


async def count_at(h: Harness, *ages: timedelta) -> None:
    async with h.hub.db.transaction() as session:
        app = (
            await session.execute(select(App.id).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
    for age in ages:
        h.hub.usage.api(h.clock() - age, app, 200, "accounts")
        h.hub.usage.api(h.clock() - age, None, 401, "accounts")
    await store.flush(h.hub.db, h.hub.usage)


def hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


async def test_rows_older_than_400_days_are_purged(harness: Harness) -> None:
    h = harness
    h.clock.advance(minutes=30)
    await count_at(
        h, timedelta(days=401), timedelta(days=400, hours=1), timedelta(days=399), timedelta(0)
    )
    assert len(await hours_kept(h)) == 8  # an app's row and an unattributed row per hour
    report = await retention.purge(h.hub.db, h.hub.clock, batch=1)
    assert report.usage_rows == 4
    assert report.as_dict()["usage_rows"] == 4
    assert await hours_kept(h) == 2 * [hour(h.clock() - timedelta(days=399))] + 2 * [
        hour(h.clock())
    ]
    again = await retention.purge(h.hub.db, h.hub.clock)
    assert again.usage_rows == 0


@pytest.mark.parametrize("harness", [{"usage_retention_days": 30}], indirect=True)
async def test_the_runner_keeps_usage_for_the_configured_days(harness: Harness) -> None:
    h = harness
    await count_at(h, timedelta(days=31), timedelta(days=29))
    report = await Runner(h.hub).housekeeping.sweep()
    assert report.usage_rows == 2
    assert await hours_kept(h) == 2 * [hour(h.clock() - timedelta(days=29))]
