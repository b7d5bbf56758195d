"""Webhooks and signatures in the dashboard: endpoints, secrets shown once and rotated, the
delivery log with every attempt, and replaying one event."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from bankhub.audit.models import AuditEntry
from bankhub.config import Environment
from bankhub.dashboard.roles import Role
from bankhub.events import services as events
from bankhub.partners.models import App
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
SECRET = re.compile(r'id="signing-secret">([^<]+)<')


async def _event(h: Harness) -> int:
    async with h.hub.db.transaction() as db:
        app = (
            await db.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        event = await events.record(
            db,
            app_id=app.id,
            type=events.LOGIN_STATUS,
            payload=events.login_status_payload(7, "success"),
            now=h.clock(),
        )
    return event.id  # given at commit


async def test_add_endpoint_log_every_attempt_replay_and_rotate(
    harness: Harness, visitors: Visitors
) -> None:
    v = visitors()
    await v.sign_in(await make_member(harness, Role.DEVELOPER))
    base = f"/dashboard/apps/{harness.creds['client_id']}/webhooks"
    await v.get(base)
    refused = await v.post(base, {"url": "javascript:alert(1)"})
    assert "webhook url refused" in refused.text
    form = {"csrf": v.csrf, "url": "https://hooks.example.com/in", "event": "login.status"}
    added = await v.client.post(base, data=form, headers={"origin": "http://testserver.local"})
    # post/redirect/get: the secret is shown once on the page the answer leads to
    assert added.status_code == 303, added.text
    shown = await v.open(added.headers["location"])
    assert shown.headers["cache-control"] == "no-store"
    found = SECRET.search(shown.text)
    assert found is not None
    secret = found.group(1)
    assert secret.startswith("whsec_")
    # a reload shows nothing again and adds no second endpoint
    again = await v.open(added.headers["location"])
    assert again.status_code == 410
    assert SECRET.search(again.text) is None
    async with harness.hub.db.transaction() as db:
        assert (await db.execute(select(func.count(WebhookEndpoint.id)))).scalar_one() == 1
    async with harness.hub.db.transaction() as db:
        endpoint = (await db.execute(select(WebhookEndpoint))).scalar_one()
        assert secret not in endpoint.secret_enc
        assert webhooks.signing_secrets(harness.hub.keyring, endpoint, harness.clock()) == [secret]
        assert endpoint.events == ["login.status"]

    event_id = await _event(harness)
    async with harness.hub.db.transaction() as db:
        delivery = (await db.execute(select(WebhookDelivery))).scalar_one()
        delivery.attempts = 2
        for status in (500, 503):
            db.add(
                WebhookAttempt(
                    app_id=delivery.app_id,
                    delivery_id=delivery.id,
                    attempted_at=harness.clock(),
                    duration_ms=12,
                    outcome="retry",
                    status_code=status,
                    error=None,
                    response_excerpt="",
                )
            )
    log = await v.get(base)
    assert f'data-event="{event_id}"' in log.text
    assert "HTTP 500" in log.text
    assert "HTTP 503" in log.text
    assert "2 attempts" in log.text

    replayed = await v.post(
        f"/dashboard/apps/{harness.creds['client_id']}/events/{event_id}/replay"
    )
    assert replayed.status_code == 303
    async with harness.hub.db.transaction() as db:
        count = (await db.execute(select(func.count(WebhookDelivery.id)))).scalar_one()
        assert count == 2
        queued = [
            d.created_at.strftime("%H:%M:%S")
            for d in (await db.execute(select(WebhookDelivery))).scalars()
        ]
    await v.get(base)
    page = await v.get(base)
    # the replay is a second delivery of the event, each with the time it was queued
    section = page.text.split(f'data-event="{event_id}"', 1)[1].split("</section>", 1)[0]
    assert section.count("<li data-delivery=") == 2
    for when in queued:
        assert f"queued {when}," in section
    endpoint_id = re.findall(r'data-endpoint="([^"]+)"', page.text)[0]
    rotated = await v.post(f"{base}/{endpoint_id}/rotate", {"overlap": "3600"})
    assert rotated.status_code == 303, rotated.text
    found = SECRET.search((await v.open(rotated.headers["location"])).text)
    assert found is not None
    new = found.group(1)
    assert new != secret
    async with harness.hub.db.transaction() as db:
        endpoint = (await db.execute(select(WebhookEndpoint))).scalar_one()
        both = webhooks.signing_secrets(harness.hub.keyring, endpoint, harness.clock())
        actions = {(e.action, e.actor) for e in (await db.execute(select(AuditEntry))).scalars()}
    assert both == [new, secret]
    who = "member:developer@example.com"
    for action in ("webhook.endpoint_created", "event.replayed", "webhook.secret_rotated"):
        assert (action, who) in actions
    # the secrets are not on the page any more
    again = await v.get(base)
    assert secret not in again.text
    assert new not in again.text


async def test_a_viewer_reads_the_log_but_changes_nothing(
    harness: Harness, visitors: Visitors
) -> None:
    event_id = await _event(harness)
    v = visitors()
    await v.sign_in(await make_member(harness, Role.VIEWER))
    base = f"/dashboard/apps/{harness.creds['client_id']}/webhooks"
    page = await v.get(base)
    assert f'data-event="{event_id}"' in page.text
    assert "Replay" not in page.text
    assert "Add an endpoint" not in page.text
    forged = await v.post(f"/dashboard/apps/{harness.creds['client_id']}/events/{event_id}/replay")
    assert forged.status_code == 403
    other = await harness.new_app()
    foreign = await v.get(f"/dashboard/apps/{other['client_id']}/webhooks")
    assert f'data-event="{event_id}"' not in foreign.text


HTTPS_BASE = "https://testserver.local"


@pytest.mark.parametrize(
    "harness",
    [{"env": Environment.PRODUCTION, "kek": "q" * 43, "public_url": HTTPS_BASE}],
    indirect=True,
)
async def test_outside_dev_urls_resolving_to_private_addresses_are_refused(
    harness: Harness, visitors: Visitors
) -> None:
    """S39 at creation: the host is resolved when the endpoint is added (the system resolver
    here: ``localhost`` comes from the hosts file) and a private, loopback, link-local or
    mapped answer is refused with the reason; nothing is stored."""
    person = await make_member(harness, Role.DEVELOPER)
    v = visitors(base_url=HTTPS_BASE)
    ours = {"origin": HTTPS_BASE}
    await v.get("/dashboard/sign-in")
    await v.post(
        "/dashboard/sign-in", {"email": person.email, "password": person.password}, headers=ours
    )
    await v.get("/dashboard/sign-in/code")
    signed_in = await v.post(
        "/dashboard/sign-in/code", {"code": person.code(harness)}, headers=ours
    )
    assert signed_in.headers.get("location") == "/dashboard", signed_in.text
    base = f"/dashboard/apps/{harness.creds['client_id']}/webhooks"
    await v.get(base)
    for url, reason in [
        ("https://localhost/in", "localhost resolves to"),
        ("https://127.0.0.1/in", "127.0.0.1 resolves to 127.0.0.1, which is loopback"),
        ("https://10.0.0.5/in", "10.0.0.5 resolves to 10.0.0.5, which is private"),
        ("https://169.254.169.254/latest", "which is link-local"),
        ("https://[::ffff:192.168.1.1]/in", "embeds 192.168.1.1, which is private"),
        ("http://93.184.216.34/in", "URL scheme must be https"),
    ]:
        refused = await v.post(base, {"url": url}, headers=ours)
        assert refused.status_code == 200, refused.text
        assert "webhook url refused" in refused.text, url
        assert reason in html.unescape(refused.text), url
    async with harness.hub.db.transaction() as db:
        assert (await db.execute(select(func.count(WebhookEndpoint.id)))).scalar_one() == 0
    added = await v.post(base, {"url": "https://93.184.216.34/in"}, headers=ours)
    assert SECRET.search((await v.open(added.headers["location"])).text) is not None
    async with harness.hub.db.transaction() as db:
        assert (await db.execute(select(WebhookEndpoint.url))).scalars().all() == [
            "https://93.184.216.34/in"
        ]


async def test_a_disabled_endpoint_shows_why_and_comes_back_after_reauthentication(
    harness: Harness, visitors: Visitors
) -> None:
    """The page says since when and why an endpoint is disabled; re-enabling it asks for the
    password and code again (S7), queues what it missed in order, and is audited."""
    h = harness
    async with h.hub.db.transaction() as db:
        app = (
            await db.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        issued = await webhooks.create_endpoint(
            db, h.hub.keyring, h.clock(), app.id, "https://hooks.example.com/in", allow_http=True
        )
        issued.endpoint.disabled_at = h.clock()
        issued.endpoint.disabled_reason = "the endpoint answered 410 Gone"
    endpoint_id = issued.endpoint.id
    h.clock.advance(seconds=1)
    missed = [await _event(h), await _event(h)]
    base = f"/dashboard/apps/{h.creds['client_id']}/webhooks"
    enable = f"{base}/{endpoint_id}/enable"

    viewer = visitors()
    await viewer.sign_in(await make_member(h, Role.VIEWER))
    seen = await viewer.get(base)
    assert "disabled</span> since 2026-11-20 09:00 UTC: the endpoint answered 410 Gone" in seen.text
    assert "Re-enable" not in seen.text
    assert (await viewer.post(enable)).status_code == 403

    person = await make_member(h, Role.DEVELOPER)
    v = visitors()
    await v.sign_in(person)
    page = await v.get(base)
    assert f'action="{enable}"' in page.text
    h.clock.advance(minutes=6)  # past the re-authentication window
    await v.get(base)
    gated = await v.post(enable, headers={"referer": f"http://testserver.local{base}"})
    assert gated.status_code == 303
    assert gated.headers["location"].startswith("/dashboard/reauth?pending=")
    async with h.hub.db.transaction() as db:
        endpoint = await db.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert endpoint.disabled_at is not None
        assert (await db.execute(select(func.count(WebhookDelivery.id)))).scalar_one() == 0
    await v.get(gated.headers["location"])
    again = await v.post(
        "/dashboard/reauth",
        {"password": person.password, "code": person.code(h), "next": base},
    )
    assert again.status_code == 303
    await v.get(again.headers["location"])
    done = await v.post(enable)
    assert done.status_code == 200, done.text
    assert "enabled again; the 2 events it missed" in html.unescape(done.text)
    assert "Re-enable" not in done.text
    async with h.hub.db.transaction() as db:
        queued = (
            await db.execute(select(WebhookDelivery.event_id).order_by(WebhookDelivery.id))
        ).scalars()
        assert list(queued) == missed
        entries = (
            await db.execute(
                select(AuditEntry.actor, AuditEntry.detail).where(
                    AuditEntry.action == "webhook.endpoint_enabled"
                )
            )
        ).all()
    assert [(actor, detail["queued"]) for actor, detail in entries] == [
        ("member:developer@example.com", 2)
    ]
