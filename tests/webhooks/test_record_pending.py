"""Recording an event looks its endpoints up without flushing the caller's other changes, yet
never misses an endpoint the same unit of work added, changed or disabled and has not flushed.

``events.record`` reads the app's endpoints with autoflush off (a sync's changes to its login
then go out in one UPDATE at commit instead of two), unless the session holds unflushed
endpoint changes, which would change the answer. Both cases, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from bankhub.events import services as events
from bankhub.logins.models import Login
from bankhub.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.webhooks.test_reenable import _app_id, add_endpoint


def _endpoint(app_id: int, h: Harness) -> WebhookEndpoint:
    now = h.clock()
    return WebhookEndpoint(
        id=str(uuid.uuid4()),
        app_id=app_id,
        url="https://receiver.example/hooks",
        events=[events.NEW_TRANSACTIONS],
        secret_enc="sealed",  # never sent in this test  # nosec B106
        created_at=now,
        updated_at=now,
    )


async def _queued_for(h: Harness, event_id: int) -> set[str]:
    async with h.hub.db.transaction() as session:
        found = await session.execute(
            select(WebhookDelivery.endpoint_id).where(WebhookDelivery.event_id == event_id)
        )
        return {str(endpoint_id) for (endpoint_id,) in found}


async def test_an_unflushed_new_or_disabled_endpoint_counts(harness: Harness) -> None:
    h = harness
    app_id = await _app_id(h)
    kept, _ = await add_endpoint(h, "https://kept.example/hooks")
    disabled, _ = await add_endpoint(h, "https://disabled.example/hooks")
    async with h.hub.db.transaction(write=True) as session:
        stored = await session.get(WebhookEndpoint, disabled)
        assert stored is not None
        stored.disabled_at = h.clock()
        added = _endpoint(app_id, h)
        session.add(added)
        assert added in session.new  # nothing flushed yet
        assert stored in session.dirty
        event = await events.record(
            session,
            app_id=app_id,
            type=events.NEW_TRANSACTIONS,
            payload={"login_id": 0},
            now=h.clock(),
        )
    assert await _queued_for(h, event.id) == {kept, added.id}


async def test_other_pending_changes_stay_unflushed_until_commit(harness: Harness) -> None:
    h = harness
    app_id = await _app_id(h)
    kept, _ = await add_endpoint(h, "https://kept.example/hooks")
    login_id = (await connect(h, "user_good"))["login_id"]
    async with h.hub.db.transaction(write=True) as session:
        login = await session.get(Login, login_id)
        assert login is not None
        login.notices = ["pending"]
        event = await events.record(
            session,
            app_id=app_id,
            login_id=login_id,
            type=events.NEW_TRANSACTIONS,
            payload={"login_id": login_id},
            now=h.clock(),
        )
        # the look-up did not flush the login: it goes out with the rest at commit
        assert login in session.dirty
    assert await _queued_for(h, event.id) == {kept}
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, login_id)
        assert login is not None
        assert login.notices == ["pending"]
