"""Events reach partners: outbox → runner → signed delivery, retried until the receiver recovers."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.jobs.runner import Runner
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.sync.models import SyncRun
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.support.raw_http import Receiver


async def add_endpoint(h: Harness, url: str, events: list[str] | None = None) -> tuple[str, str]:
    async with h.hub.db.transaction() as session:
        app = (
            await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        issued = await webhooks.create_endpoint(
            session, h.hub.keyring, h.clock(), app.id, url, events, allow_http=True
        )
    return issued.endpoint.id, issued.secret


async def deliveries(h: Harness) -> list[WebhookDelivery]:
    async with h.hub.db.transaction() as session:
        return list(
            (await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))).scalars()
        )


def verified(secret: str, request: Any) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_connect_events_are_delivered_signed_and_readable(
    harness: Harness, receiver: Receiver
) -> None:
    h = harness
    _, secret = await add_endpoint(h, receiver.url + "/hooks")
    login = await connect(h, "user_good")
    tally = await Runner(h.hub).run_once()
    assert tally.deliveries == 1
    [request] = receiver.received
    assert request.target == "/hooks"
    body = verified(secret, request)
    assert set(body) == {"login_id", "timestamp", "accounts", "new", "referenceId", "event_type"}
    assert body["login_id"] == login["login_id"]
    assert body["new"] > 0
    assert request.headers["bankhub-event"] == "transactions.new"

    listed = (await h.client.get("/v2/event", headers=h.headers())).json()
    assert [e["payload"] for e in listed["data"]] == [body]
    assert request.headers["webhook-id"] == f"evt_{listed['data'][0]['id']}"
    assert listed["has_more"] is False
    after = await h.client.get(f"/v2/event?cursor={listed['next_cursor']}", headers=h.headers())
    assert after.json()["data"] == []


async def test_event_cursor_pages_in_order(harness: Harness) -> None:
    h = harness
    await connect(h, "user_good")
    short = await connect(h, "user_consent_short")
    h.clock.advance(minutes=6)
    # the expired consent gives a login.status and a sync.failed event
    await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=short["secret"]))
    ids: list[int] = []
    cursor = ""
    while True:
        page = (
            await h.client.get(f"/v2/event?limit=1&cursor={cursor}", headers=h.headers())
        ).json()
        ids += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert ids == sorted(ids)
    assert len(ids) >= 3
    other = await h.new_app()
    foreign = await h.client.get(
        "/v2/event",
        headers={"client-id": other["client_id"], "service-secret": other["service_secret"]},
    )
    assert foreign.json()["data"] == []


@pytest.mark.parametrize("harness", [{"webhook_timeout_seconds": 0.5}], indirect=True)
async def test_failures_are_retried_with_the_same_id_until_the_receiver_recovers(
    harness: Harness, receiver: Receiver
) -> None:
    h = harness
    elsewhere = Receiver()
    await elsewhere.start()
    _, secret = await add_endpoint(h, receiver.url)
    await connect(h, "user_good")
    runner = Runner(h.hub)

    receiver.status = 500
    assert (await runner.run_once()).deliveries == 0
    [first] = await deliveries(h)
    assert first.attempts == 1
    assert first.next_attempt_at - h.clock() >= timedelta(seconds=3)

    h.clock.advance(seconds=10)
    receiver.status, receiver.headers = 429, {"Retry-After": "120"}
    await runner.run_once()
    [second] = await deliveries(h)
    assert second.next_attempt_at - h.clock() >= timedelta(seconds=120)

    h.clock.advance(seconds=121)
    receiver.status, receiver.headers = 302, {"Location": elsewhere.url}
    await runner.run_once()
    assert elsewhere.received == []

    h.clock.advance(minutes=10)
    receiver.status, receiver.headers, receiver.hang = 200, {}, True
    await runner.run_once()
    [hung] = await deliveries(h)
    assert hung.status == "pending"

    h.clock.advance(hours=1)
    receiver.hang = False
    assert (await runner.run_once()).deliveries == 1
    [done] = await deliveries(h)
    assert done.status == "delivered"
    assert done.attempts == 5
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(ids) == 1
    for request in receiver.received:  # every attempt is signed, not only the one that landed
        verified(secret, request)
    async with h.hub.db.transaction() as session:
        attempts = (
            (await session.execute(select(WebhookAttempt).order_by(WebhookAttempt.id)))
            .scalars()
            .all()
        )
    assert [a.status_code for a in attempts] == [500, 429, 302, None, 200]
    assert "redirect not followed" in (attempts[2].error or "")
    event_id = int(receiver.received[-1].headers["webhook-id"].removeprefix("evt_"))
    detail = (await h.client.get(f"/v2/event/{event_id}", headers=h.headers())).json()["data"]
    [delivery] = detail["deliveries"]
    assert delivery["status"] == "delivered"
    assert [a["outcome"] for a in delivery["log"]] == ["retry"] * 4 + ["delivered"]
    assert [a["status_code"] for a in delivery["log"]] == [500, 429, 302, None, 200]
    await elsewhere.stop()


async def test_gone_disables_the_endpoint(harness: Harness, receiver: Receiver) -> None:
    h = harness
    endpoint_id, secret = await add_endpoint(h, receiver.url)
    payload = await connect(h, "user_good")
    receiver.status = 410
    await Runner(h.hub).run_once()
    [request] = receiver.received
    verified(secret, request)
    async with h.hub.db.transaction() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert endpoint.disabled_at is not None
    h.clock.advance(minutes=6)
    await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=payload["secret"]))
    assert [d.status for d in await deliveries(h)] == ["abandoned"]


async def test_rotation_signs_with_both_secrets_during_the_overlap(
    harness: Harness, receiver: Receiver
) -> None:
    h = harness
    endpoint_id, old = await add_endpoint(h, receiver.url)
    async with h.hub.db.transaction() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        new = await webhooks.rotate_secret(
            session, h.hub.keyring, h.clock(), endpoint, timedelta(hours=24)
        )
    await connect(h, "user_good")
    await Runner(h.hub).run_once()
    request = receiver.received[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verified(old, request)
    verified(new, request)

    h.clock.advance(hours=25)
    events = (await h.client.get("/v2/event", headers=h.headers())).json()["data"]
    replay = await h.client.post(f"/v2/event/{events[0]['id']}/replay", headers=h.headers())
    assert replay.json()["data"] == {"id": events[0]["id"], "replayed": True, "deliveries": 1}
    await Runner(h.hub).run_once()
    again = receiver.received[-1]
    assert again.headers["webhook-id"] == request.headers["webhook-id"]
    verified(new, again)
    with pytest.raises(WebhookVerificationError):
        verified(old, again)


async def test_replay_of_an_unknown_or_foreign_event(harness: Harness) -> None:
    h = harness
    await connect(h, "user_good")
    other = await h.new_app()
    event_id = (await h.client.get("/v2/event", headers=h.headers())).json()["data"][0]["id"]
    foreign = await h.client.post(
        f"/v2/event/{event_id}/replay",
        headers={"client-id": other["client_id"], "service-secret": other["service_secret"]},
    )
    assert foreign.status_code == 404
    assert (await h.client.post("/v2/event/999999/replay", headers=h.headers())).status_code == 404


async def test_endpoints_receive_only_the_types_they_asked_for(
    harness: Harness, receiver: Receiver
) -> None:
    h = harness
    await add_endpoint(h, receiver.url, ["login.status"])
    await connect(h, "user_good")
    assert await deliveries(h) == []
    async with h.hub.db.transaction() as session:
        assert (await session.execute(select(Event.type))).scalars().all() == ["transactions.new"]


SEED_KEYS = {
    "transactions.new": ["login_id", "timestamp", "accounts", "new", "referenceId"],
    "login.status": ["status", "login_id"],
}


async def test_every_body_names_its_type_beside_the_seed_keys(
    harness: Harness, receiver: Receiver
) -> None:
    """The seed's two bodies keep exactly the seed's keys, in the seed's order, and add
    ``event_type`` after them; the signature covers it, and the feed shows the same body."""
    h = harness
    _, secret = await add_endpoint(h, receiver.url)
    await connect(h, "user_good")
    short = await connect(h, "user_consent_short")
    h.clock.advance(minutes=6)
    await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=short["secret"]))
    await Runner(h.hub).run_once()
    feed = {
        e["id"]: e for e in (await h.client.get("/v2/event", headers=h.headers())).json()["data"]
    }
    seen: set[str] = set()
    for request in receiver.received:
        body = verified(secret, request)
        kind = request.headers["bankhub-event"]
        assert list(body) == [*SEED_KEYS[kind], "event_type"], body
        assert body["event_type"] == kind
        event = feed[int(request.headers["webhook-id"].removeprefix("evt_"))]
        assert event["type"] == kind
        assert event["payload"] == body
        assert request.body == json.dumps(event["payload"], separators=(",", ":")).encode()
        seen.add(kind)
    assert seen == {"transactions.new", "login.status"}


async def test_a_new_endpoint_gets_the_seeds_two_types_unless_it_asks(
    harness: Harness, receiver: Receiver
) -> None:
    """Without a list, an endpoint receives ``transactions.new`` and ``login.status`` only (the
    seed's webhook events); bankhub's other types go to endpoints that ask for them."""
    h = harness
    default_id, _ = await add_endpoint(h, receiver.url + "/default")
    every_id, _ = await add_endpoint(h, receiver.url + "/every", list(events.EVENT_TYPES))
    async with h.hub.db.transaction() as session:
        stored = await session.get(WebhookEndpoint, default_id)
        assert stored is not None
        assert stored.events == ["transactions.new", "login.status"]
    await connect(h, "user_good")
    short = await connect(h, "user_consent_short")
    h.clock.advance(minutes=6)
    # the expired consent gives a login.status and a sync.failed event
    await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=short["secret"]))
    async with h.hub.db.transaction() as session:
        rows = (
            await session.execute(
                select(WebhookDelivery.endpoint_id, Event.type)
                .join(Event, Event.id == WebhookDelivery.event_id)
                .order_by(WebhookDelivery.id)
            )
        ).all()
    got: dict[str, set[str]] = {}
    for endpoint_id, kind in rows:
        got.setdefault(endpoint_id, set()).add(kind)
    assert got[default_id] == {"transactions.new", "login.status"}
    assert got[every_id] == {"transactions.new", "login.status", "sync.failed"}


async def test_scheduled_syncs_respect_the_daily_quota(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_dynamic")
    runner = Runner(h.hub)
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, payload["login_id"])
        assert login is not None
        assert login.next_sync_at is not None
        gap = login.next_sync_at - h.clock()
    assert timedelta(hours=5) < gap < timedelta(hours=7)
    assert (await runner.run_once()).syncs == 0  # nothing due yet

    done = 0
    for _ in range(8):
        h.clock.advance(hours=2)
        async with h.hub.db.transaction() as session:
            login = await session.get(Login, payload["login_id"])
            assert login is not None
            if login.next_sync_at and login.next_sync_at.date() == h.clock().date():
                login.next_sync_at = h.clock()  # due at once, to reach the quota in one day
        done += (await runner.run_once()).syncs
    async with h.hub.db.transaction() as session:
        runs = (
            (await session.execute(select(SyncRun).where(SyncRun.kind == "scheduled")))
            .scalars()
            .all()
        )
        per_day: dict[object, int] = {}
        for run in runs:
            per_day[run.started_at.date()] = per_day.get(run.started_at.date(), 0) + 1
    assert done == len(runs)
    assert max(per_day.values()) == 4  # the cap was reached, and held
    assert all(r.outcome == "ok" for r in runs)


async def test_a_leased_login_is_not_synced_twice(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, payload["login_id"])
        assert login is not None
        login.sync_lease_owner = "another-worker"
        login.sync_lease_until = h.clock() + timedelta(minutes=5)
        login.next_sync_at = h.clock()
    assert (await Runner(h.hub).run_once()).syncs == 0
    busy = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=payload["secret"])
    )
    assert busy.status_code == 400
    assert busy.json()["extra"]["refreshing"] is True
    h.clock.advance(minutes=6)  # the other worker died: its lease lapses
    assert (await Runner(h.hub).run_once()).syncs == 1


async def test_one_runner_signs_with_the_new_secret_right_after_a_rotation(
    harness: Harness, receiver: Receiver
) -> None:
    """The runner keeps decrypted secrets; a rotation changes the row, so it is seen at once."""
    h = harness
    endpoint_id, old = await add_endpoint(h, receiver.url)
    runner = Runner(h.hub)
    await connect(h, "user_good")
    assert (await runner.run_once()).deliveries == 1
    verified(old, receiver.received[-1])
    async with h.hub.db.transaction() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        new = await webhooks.rotate_secret(
            session, h.hub.keyring, h.clock(), endpoint, timedelta(0)
        )
    events = (await h.client.get("/v2/event", headers=h.headers())).json()["data"]
    await h.client.post(f"/v2/event/{events[0]['id']}/replay", headers=h.headers())
    assert (await runner.run_once()).deliveries == 1
    request = receiver.received[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    verified(new, request)
    with pytest.raises(WebhookVerificationError):
        verified(old, request)


async def test_a_batch_of_deliveries_is_recorded_with_one_attempt_each(
    harness: Harness, receiver: Receiver
) -> None:
    h = harness
    await add_endpoint(h, receiver.url)
    for user in ("user_good", "user_good", "user_good"):
        await connect(h, user)
    assert (await Runner(h.hub).run_once()).deliveries == 3
    rows = await deliveries(h)
    assert [(d.status, d.attempts, d.lease_owner) for d in rows] == [("delivered", 1, None)] * 3
    async with h.hub.db.transaction() as session:
        attempts = (await session.execute(select(WebhookAttempt))).scalars().all()
    assert sorted(a.delivery_id for a in attempts) == sorted(d.id for d in rows)
    assert {a.outcome for a in attempts} == {"delivered"}
