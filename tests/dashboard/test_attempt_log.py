"""The dashboard's delivery log shows an attempt from its start, and one cut short as
interrupted; the usage chart counts attempts once they ended."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from bankhub.dashboard.roles import Role
from bankhub.jobs.runner import Runner
from bankhub.partners.models import App
from bankhub.usage import series
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member
from tests.jobs.test_outbox import add_endpoint
from tests.support.raw_http import Gate

Visitors = Callable[..., Visitor]
ATTEMPTS = re.compile(r'<ol class="attempts">(.*?)</ol>', re.S)


async def attempts_shown(v: Visitor, h: Harness) -> list[str]:
    page = await v.get(f"/dashboard/apps/{h.creds['client_id']}/webhooks")
    found = ATTEMPTS.findall(page.text)
    return [] if not found else re.findall(r"<li data-attempt=\"\d+\">(.*?)</li>", found[-1], re.S)


async def chart(h: Harness) -> dict[str, int]:
    async with h.hub.db.transaction() as session:
        app = (
            await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        drawn = await series.webhook_attempts(
            session, app.id, h.clock() - timedelta(hours=2), h.clock() + timedelta(hours=1)
        )
    return drawn.totals()


@pytest.mark.parametrize("harness", [{"lease_seconds": 1}], indirect=True)
async def test_the_log_shows_an_attempt_under_way_and_one_cut_short(
    harness: Harness, visitors: Visitors, gate: Gate
) -> None:
    h = harness
    v = visitors()
    await v.sign_in(await make_member(h, Role.DEVELOPER))
    await add_endpoint(h, gate.url)
    await connect(h, "user_good")
    stalled = Runner(h.hub, owner="stalled")
    [job] = await stalled.deliveries.claim_due(10)
    hanging = asyncio.create_task(stalled.deliveries.deliver(job))
    await asyncio.wait_for(gate.arrived.wait(), 5)

    [under_way] = await attempts_shown(v, h)
    assert "sending (under way)" in under_way
    assert await chart(h) == {"delivered": 0, "failed": 0}  # not an outcome yet

    h.clock.advance(seconds=5)  # the lease lapses; another runner takes the delivery over
    taker = Runner(h.hub, owner="taker")
    [again] = await taker.deliveries.claim_due(10)
    assert await taker.deliveries.deliver(again) is True
    gate.opened.set()
    assert await hanging is False

    cut, delivered = await attempts_shown(v, h)
    assert "interrupted: cut short" in cut
    assert " ms)" not in cut  # it never ended: no duration to show
    assert "delivered HTTP 200" in delivered
    assert await chart(h) == {"delivered": 1, "failed": 1}
