"""Webhook endpoints as a partner debugs them in the dashboard: edit the URL and event types,
disable and enable, delete, send a test event (queued for that endpoint alone, marked as a
test, never in the event feed), endpoint ids shown, and the delivery log with each attempt's
payload and redacted answer, filtered by endpoint, event type and outcome, paged."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from sqlalchemy import func, select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard import webhook_routes
from bankhub.dashboard.roles import Role
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.partners.models import App
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
EVENT = re.compile(r'<section class="event" data-event="(\d+)"')


async def _app_id(h: Harness) -> int:
    async with h.hub.db.transaction() as db:
        app = (
            await db.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        return app.id


async def _endpoint(h: Harness, url: str, types: list[str] | None = None) -> str:
    app_id = await _app_id(h)
    async with h.hub.db.transaction() as db:
        issued = await webhooks.create_endpoint(
            db, h.hub.keyring, h.clock(), app_id, url, types, allow_http=True
        )
    return issued.endpoint.id


async def _event(h: Harness, type: str = events.LOGIN_STATUS) -> int:
    app_id = await _app_id(h)
    payload = (
        events.login_status_payload(7, "success")
        if type == events.LOGIN_STATUS
        else events.login_deleted_payload(7)
    )
    async with h.hub.db.transaction() as db:
        event = await events.record(db, app_id=app_id, type=type, payload=payload, now=h.clock())
    return event.id


async def _audited(h: Harness, action: str) -> list[str]:
    async with h.hub.db.transaction() as db:
        found = await db.execute(select(AuditEntry.actor).where(AuditEntry.action == action))
        return list(found.scalars())


async def test_edit_disable_enable_and_delete_an_endpoint(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    endpoint_id = await _endpoint(h, "https://hooks.example.com/in")
    v = visitors()
    await v.sign_in(await make_member(h, Role.DEVELOPER))
    base = f"/dashboard/apps/{h.creds['client_id']}/webhooks"
    page = await v.get(base)
    assert f'<code class="endpoint-id">{endpoint_id}</code>' in page.text

    refused = await v.post(f"{base}/{endpoint_id}/edit", {"url": "javascript:alert(1)"})
    assert "webhook url refused" in refused.text
    form = {"csrf": v.csrf, "url": "https://hooks.example.com/v2", "event": "login.deleted"}
    edited = await v.client.post(
        f"{base}/{endpoint_id}/edit", data=form, headers={"origin": "http://testserver.local"}
    )
    assert edited.status_code == 303, edited.text
    async with h.hub.db.transaction() as db:
        endpoint = await db.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert (endpoint.url, endpoint.events) == (
            "https://hooks.example.com/v2",
            ["login.deleted"],
        )
    assert await _audited(h, "webhook.endpoint_changed") == ["member:developer@example.com"]

    await v.get(base)
    disabled = await v.post(f"{base}/{endpoint_id}/disable")
    assert disabled.status_code == 303
    await _event(h, events.LOGIN_DELETED)  # recorded while disabled: not queued
    async with h.hub.db.transaction() as db:
        assert (await db.execute(select(func.count(WebhookDelivery.id)))).scalar_one() == 0
    page = await v.get(base)
    assert "disabled from the dashboard" in page.text
    assert "Send test event" not in page.text
    enabled = await v.post(f"{base}/{endpoint_id}/enable")
    assert "enabled again" in html.unescape(enabled.text)
    async with h.hub.db.transaction() as db:
        # what it missed while disabled is queued on enabling
        assert (await db.execute(select(func.count(WebhookDelivery.id)))).scalar_one() == 1

    await v.get(base)
    deleted = await v.post(f"{base}/{endpoint_id}/delete")
    assert deleted.status_code == 303
    async with h.hub.db.transaction() as db:
        assert await db.get(WebhookEndpoint, endpoint_id) is None
        assert (await db.execute(select(func.count(WebhookDelivery.id)))).scalar_one() == 0
        assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 1
    for action in ("webhook.endpoint_disabled", "webhook.endpoint_deleted"):
        assert await _audited(h, action) == ["member:developer@example.com"]


async def test_a_test_event_goes_to_that_endpoint_alone_and_not_to_the_feed(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    tested = await _endpoint(h, "https://hooks.example.com/a")
    other = await _endpoint(h, "https://hooks.example.com/b")
    v = visitors()
    await v.sign_in(await make_member(h, Role.DEVELOPER))
    base = f"/dashboard/apps/{h.creds['client_id']}/webhooks"
    await v.get(base)
    sent = await v.post(f"{base}/{tested}/test")
    assert sent.status_code == 303
    async with h.hub.db.transaction() as db:
        event = (await db.execute(select(Event))).scalar_one()
        deliveries = list((await db.execute(select(WebhookDelivery))).scalars())
    assert event.type == events.TEST_EVENT == "webhook.test"
    assert event.payload["test"] is True
    assert event.payload["endpoint_id"] == tested
    assert [(d.endpoint_id, d.status) for d in deliveries] == [(tested, "pending")]
    assert other != tested
    assert await _audited(h, "webhook.test_sent") == ["member:developer@example.com"]
    feed = await h.client.get("/v2/event", headers=h.headers())
    assert feed.status_code == 200, feed.text
    assert feed.json()["data"] == []
    log = await v.get(sent.headers["location"])
    assert "A test event was queued" in log.text
    assert '<span class="tag">test</span>' in log.text


async def test_the_log_shows_payload_and_redacted_answer_filters_and_pages(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    first = await _endpoint(h, "https://hooks.example.com/a", ["login.status", "login.deleted"])
    second = await _endpoint(h, "https://hooks.example.com/b", ["login.status"])
    status_events = [await _event(h) for _ in range(webhook_routes.EVENTS_PER_PAGE)]
    deleted = await _event(h, events.LOGIN_DELETED)
    answer = "ok, secret whsec_c2VjcmV0c2VjcmV0c2VjcmV0 for DE89370400440532013000"
    async with h.hub.db.transaction() as db:
        for delivery in (await db.execute(select(WebhookDelivery))).scalars():
            if delivery.event_id == deleted or (
                delivery.event_id == status_events[0] and delivery.endpoint_id == second
            ):
                delivery.status = "delivered" if delivery.event_id == deleted else "failed"
                delivery.attempts = 1
                db.add(
                    WebhookAttempt(
                        app_id=delivery.app_id,
                        delivery_id=delivery.id,
                        attempted_at=h.clock(),
                        duration_ms=42,
                        outcome="delivered" if delivery.event_id == deleted else "retry",
                        status_code=200 if delivery.event_id == deleted else 500,
                        error=None,
                        response_excerpt=answer,
                    )
                )
    v = visitors()
    await v.sign_in(await make_member(h, Role.VIEWER))
    base = f"/dashboard/apps/{h.creds['client_id']}/webhooks"
    page = await v.get(base)
    shown = [int(e) for e in EVENT.findall(page.text)]
    assert shown == [deleted, *reversed(status_events)][: webhook_routes.EVENTS_PER_PAGE]
    assert "HTTP 200 in 42 ms" in page.text
    assert "whsec_c2Vj" not in page.text
    assert "DE89370400440532013000" not in page.text
    assert "[REDACTED]" in page.text
    assert "&#34;event_type&#34;: &#34;login.deleted&#34;" in page.text  # the payload sent
    older = re.search(r'rel="next" href="([^"]+)"', page.text)
    assert older is not None
    rest = await v.get(html.unescape(older.group(1)))
    assert [int(e) for e in EVENT.findall(rest.text)] == [status_events[0]]

    by_type = await v.get(f"{base}?type=login.deleted")
    assert [int(e) for e in EVENT.findall(by_type.text)] == [deleted]
    by_outcome = await v.get(f"{base}?outcome=failed")
    assert [int(e) for e in EVENT.findall(by_outcome.text)] == [status_events[0]]
    assert "HTTP 500" in by_outcome.text
    # only the chosen endpoint's deliveries: the first endpoint's delivery of that event is hidden
    assert by_outcome.text.count("data-delivery=") == 1
    by_endpoint = await v.get(f"{base}?endpoint={second}&type=login.deleted")
    assert EVENT.findall(by_endpoint.text) == []
    assert "No event matches." in by_endpoint.text
    assert first != second


async def test_a_viewer_sees_no_endpoint_tools_and_forged_posts_are_refused(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    endpoint_id = await _endpoint(h, "https://hooks.example.com/in")
    v = visitors()
    await v.sign_in(await make_member(h, Role.VIEWER))
    base = f"/dashboard/apps/{h.creds['client_id']}/webhooks"
    page = await v.get(base)
    assert endpoint_id in page.text
    for button in ("Send test event", "Disable", "Delete endpoint", "Save endpoint"):
        assert button not in page.text
    for action in ("test", "disable", "delete", "edit"):
        forged = await v.post(f"{base}/{endpoint_id}/{action}", {"url": "https://evil.example"})
        assert forged.status_code == 403, action
    async with h.hub.db.transaction() as db:
        endpoint = await db.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert endpoint.url == "https://hooks.example.com/in"
        assert endpoint.disabled_at is None
        assert (await db.execute(select(func.count(Event.id)))).scalar_one() == 0
