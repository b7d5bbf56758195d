"""An endpoint disabled by a ``410 Gone`` comes back: ``PUT /v2/webhook/{id}/enable`` shows what
it missed and queues it in event order, or, past the limit, names the event feed's cursor.

The endpoint is disabled the way production does it (the runner meets a 410), and the missed
events are real ones (connects, a failing refresh), on SQLite and PostgreSQL; the last test
races a re-enable against an event being recorded, on PostgreSQL, in both orders.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from bankhub.audit.models import AuditEntry
from bankhub.db import tenancy
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.jobs.runner import Runner
from bankhub.partners.models import App
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.support.raw_http import Receiver

GONE_REASON = "the endpoint answered 410 Gone"


async def _app_id(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        return int(
            (
                await session.execute(select(App.id).where(App.client_id == h.creds["client_id"]))
            ).scalar_one()
        )


async def add_endpoint(h: Harness, url: str) -> tuple[str, str]:
    """An endpoint for the seed's two types (the default)."""
    async with h.hub.db.transaction() as session:
        issued = await webhooks.create_endpoint(
            session, h.hub.keyring, h.clock(), await _app_id(h), url, allow_http=True
        )
    return issued.endpoint.id, issued.secret


async def disable_with_a_410(h: Harness, receiver: Receiver) -> int:
    """A connect whose ``transactions.new`` the receiver answers ``410 Gone``: the runner
    disables the endpoint. Returns the id of that event."""
    receiver.status, receiver.reason = 410, "Gone"
    before = len(receiver.received)
    await connect(h, "user_good")
    await drain(h)
    gone = receiver.received[before:]
    assert [r.headers["bankhub-event"] for r in gone] == ["transactions.new"]
    receiver.status, receiver.reason = 200, "OK"
    return int(gone[0].headers["webhook-id"].removeprefix("evt_"))


async def drain(h: Harness) -> None:
    """Run the runner until nothing is due (one delivery at a time when the harness says so)."""
    runner = Runner(h.hub)
    for _ in range(100):
        tally = await runner.run_once()
        if not tally.deliveries and not tally.syncs:
            return
    raise AssertionError("the runner never ran out of work")


async def missed_while_disabled(h: Harness) -> None:
    """Events while the endpoint is disabled: a new login (``transactions.new``), then a
    refresh after its consent ran out (``login.status`` and ``sync.failed``)."""
    await connect(h, "user_good")
    short = await connect(h, "user_consent_short")
    h.clock.advance(minutes=6)
    answer = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=short["secret"])
    )
    assert answer.json()["data"]["status"] == "login_consent_expired", answer.text


async def event_ids(h: Harness, *types: str, after: int = 0) -> list[int]:
    async with h.hub.db.transaction() as session:
        return list(
            (
                await session.execute(
                    select(Event.id)
                    .where(Event.type.in_(types), Event.id > after)
                    .order_by(Event.id)
                )
            ).scalars()
        )


def delivered_ids(receiver: Receiver, start: int = 0) -> list[int]:
    return [int(r.headers["webhook-id"].removeprefix("evt_")) for r in receiver.received[start:]]


@pytest.mark.parametrize("harness", [{"delivery_concurrency": 1}], indirect=True)
async def test_a_gone_endpoint_shows_why_and_comes_back_with_what_it_missed_in_order(
    harness: Harness, receiver: Receiver
) -> None:
    h = harness
    endpoint_id, secret = await add_endpoint(h, receiver.url + "/hooks")
    first = await disable_with_a_410(h, receiver)
    disabled_at = h.clock()

    listed = (await h.client.get("/v2/webhook", headers=h.headers())).json()["data"]
    assert listed == [
        {
            "id": endpoint_id,
            "url": receiver.url + "/hooks",
            "events": ["transactions.new", "login.status"],
            "enabled": False,
            "disabled_at": disabled_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "disabled_reason": GONE_REASON,
            "created_at": listed[0]["created_at"],
        }
    ]
    one = await h.client.get(f"/v2/webhook/{endpoint_id}", headers=h.headers())
    assert one.json()["data"] == listed[0]

    await missed_while_disabled(h)
    await drain(h)
    seen = len(receiver.received)
    assert seen == 1  # nothing reached the disabled endpoint
    missed = await event_ids(h, "transactions.new", "login.status", after=first - 1)
    assert missed[0] == first
    assert len(missed) == 4  # the 410's event, two connects, one login.status
    assert await event_ids(h, "sync.failed")  # recorded, but not a type it receives

    # a read key sees the state but cannot enable
    read_key = (
        await h.client.post("/v2/keys", json={"scope": "read"}, headers=h.headers())
    ).json()["data"]["secret"]
    as_reader = {"client-id": h.creds["client_id"], "service-secret": read_key}
    assert (await h.client.get("/v2/webhook", headers=as_reader)).status_code == 200
    refused = await h.client.put(f"/v2/webhook/{endpoint_id}/enable", headers=as_reader)
    assert refused.status_code == 403, refused.text

    enabled = await h.client.put(f"/v2/webhook/{endpoint_id}/enable", headers=h.headers())
    assert enabled.status_code == 200, enabled.text
    data = enabled.json()["data"]
    assert data["endpoint"]["enabled"] is True
    assert data["endpoint"]["disabled_at"] is None
    assert data["endpoint"]["disabled_reason"] is None
    catch_up = data["catch_up"]
    assert {k: v for k, v in catch_up.items() if k != "message"} == {
        "missed": 4,
        "queued": 4,
        "limit": 1000,
        "first_event_id": first,
        "feed_cursor": None,
    }
    assert f"from event {first} on" in catch_up["message"]

    await drain(h)
    assert delivered_ids(receiver, seen) == missed  # each once, in event order
    for request in receiver.received[seen:]:
        body = Webhook(secret).verify(request.body, request.headers)
        assert body["event_type"] == request.headers["bankhub-event"]

    # afterwards, new events go out as usual, and nothing is sent twice
    after_catch_up = len(receiver.received)
    await connect(h, "user_good")
    await drain(h)
    newest = await event_ids(h, "transactions.new", after=missed[-1])
    assert delivered_ids(receiver, after_catch_up) == newest

    again = await h.client.put(f"/v2/webhook/{endpoint_id}/enable", headers=h.headers())
    assert again.json()["data"]["catch_up"]["queued"] == 0
    assert "enabled already" in again.json()["data"]["catch_up"]["message"]

    async with h.hub.db.transaction() as session:
        entries = list(
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.action == "webhook.endpoint_enabled")
                )
            ).scalars()
        )
    assert len(entries) == 1  # the second call changed nothing
    [entry] = entries
    assert entry.actor == f"app:{h.creds['client_id']}"
    assert entry.target_id == endpoint_id
    assert entry.detail["queued"] == 4
    assert entry.detail["disabled_reason"] == GONE_REASON
    assert entry.detail["by"]["key_id"]


@pytest.mark.parametrize("harness", [{"webhook_catch_up_limit": 3}], indirect=True)
async def test_past_the_limit_nothing_is_queued_and_the_feed_cursor_is_named(
    harness: Harness, receiver: Receiver
) -> None:
    h = harness
    endpoint_id, _ = await add_endpoint(h, receiver.url)
    first = await disable_with_a_410(h, receiver)
    await missed_while_disabled(h)
    await connect(h, "user_good")
    missed = await event_ids(h, "transactions.new", "login.status", after=first - 1)
    assert len(missed) == 5

    enabled = await h.client.put(f"/v2/webhook/{endpoint_id}/enable", headers=h.headers())
    catch_up = enabled.json()["data"]["catch_up"]
    cursor = str(first - 1)
    assert {k: v for k, v in catch_up.items() if k != "message"} == {
        "missed": 5,
        "queued": 0,
        "limit": 3,
        "first_event_id": first,
        "feed_cursor": cursor,
    }
    assert f"GET /v2/event?cursor={cursor}" in catch_up["message"]
    assert enabled.json()["data"]["endpoint"]["enabled"] is True
    # the cursor reads the feed from the first missed event on
    feed = await h.client.get(f"/v2/event?cursor={cursor}", headers=h.headers())
    assert feed.json()["data"][0]["id"] == first
    before = len(receiver.received)
    await drain(h)
    assert len(receiver.received) == before  # nothing was queued

    # A second spell starts afresh: the first one's events were left to the feed.
    second = await disable_with_a_410(h, receiver)
    await connect(h, "user_good")
    spell = await event_ids(h, "transactions.new", "login.status", after=second - 1)
    assert len(spell) == 2
    enabled = await h.client.put(f"/v2/webhook/{endpoint_id}/enable", headers=h.headers())
    catch_up = enabled.json()["data"]["catch_up"]
    assert (catch_up["missed"], catch_up["queued"], catch_up["first_event_id"]) == (2, 2, second)
    seen = len(receiver.received)
    await drain(h)
    assert sorted(delivered_ids(receiver, seen)) == spell


async def test_enabling_a_missing_or_foreign_endpoint_is_not_found(harness: Harness) -> None:
    h = harness
    other = await h.new_app()
    async with h.hub.db.transaction() as session:
        theirs = await webhooks.create_endpoint(
            session,
            h.hub.keyring,
            h.clock(),
            int(
                (
                    await session.execute(select(App.id).where(App.client_id == other["client_id"]))
                ).scalar_one()
            ),
            "https://b.example/hook",
            allow_http=True,
        )
        theirs.endpoint.disabled_at = h.clock()
    for endpoint_id in (theirs.endpoint.id, "no-such-endpoint"):
        answer = await h.client.put(f"/v2/webhook/{endpoint_id}/enable", headers=h.headers())
        assert answer.status_code == 404
        assert answer.json()["error"] == "NotFound"
    async with h.hub.db.transaction() as session:
        row = await session.get(WebhookEndpoint, theirs.endpoint.id)
        assert row is not None
        assert row.disabled_at is not None


# --- an event recorded while the endpoint is being enabled -----------------------------------


async def _blocked(h: Harness) -> bool:
    """Whether some connection of this database waits for a row lock."""
    async with h.hub.db.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def _until_blocked_or_done(h: Harness, task: asyncio.Task[Any]) -> None:
    for _ in range(500):
        if task.done() or await _blocked(h):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second transaction neither finished nor waited for the first")


async def _record(session: AsyncSession, app_id: int, now: Any) -> Event:
    """An event recorded in ``session``: its id is set once that unit of work commits (the
    feed's ids are in commit order, ``db.commit_order``)."""
    return await events.record(
        session,
        app_id=app_id,
        type=events.LOGIN_STATUS,
        payload=events.login_status_payload(7, "success"),
        now=now,
    )


async def _deliveries_of(h: Harness, event_id: int) -> list[str]:
    async with h.hub.db.transaction() as session:
        return list(
            (
                await session.execute(
                    select(WebhookDelivery.status).where(WebhookDelivery.event_id == event_id)
                )
            ).scalars()
        )


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_event_recorded_during_the_re_enabling_is_sent_once(
    harness: Harness, receiver: Receiver
) -> None:
    """Both orders on PostgreSQL: an event recorded (not yet committed) when the re-enabling
    starts, and a re-enabling under way (not yet committed) when an event is recorded. Either
    way the event gets exactly one pending delivery."""
    h = harness
    app_id = await _app_id(h)
    endpoint_id, _ = await add_endpoint(h, receiver.url)
    db = h.hub.db

    async def enable() -> webhooks.CatchUp:
        async with db.transaction(write=True) as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            return await webhooks.enable_endpoint(session, h.clock(), endpoint)

    async def disable() -> None:
        async with db.transaction() as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            endpoint.disabled_at = h.clock()
            endpoint.disabled_reason = GONE_REASON

    with tenancy.acting_for(app_id):
        # 1. the event's transaction is open when the re-enabling starts
        await disable()
        async with db.transaction() as recording:
            first = await _record(recording, app_id, h.clock())
            enabling = asyncio.create_task(enable())
            await _until_blocked_or_done(h, enabling)
        await enabling
        assert await _deliveries_of(h, first.id) == ["pending"]

        # 2. the re-enabling is open when the event is recorded
        await disable()
        async with db.transaction() as enabling_session:
            endpoint = await enabling_session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            await webhooks.enable_endpoint(enabling_session, h.clock(), endpoint)

            async def record_one() -> int:
                async with db.transaction() as session:
                    event = await _record(session, app_id, h.clock())
                return event.id

            recording_task = asyncio.create_task(record_one())
            await _until_blocked_or_done(h, recording_task)
        second = await recording_task
        assert await _deliveries_of(h, second) == ["pending"]
