"""Mail to the team through the SMTP settings, caught by a real SMTP server on loopback:
sign-in alerts for a browser not used before, and consent-expiry notices from the consent sweep,
both mailed by the runner from the outbox (tests/dashboard/test_mail_outbox.py: its guarantees)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.message import EmailMessage

from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard import mail
from bankhub.dashboard.roles import Role
from bankhub.jobs.runner import Runner
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.dashboard.conftest import SmtpServer
from tests.dashboard.support import Visitor, make_member
from tests.support.postgres import free_port

Visitors = Callable[..., Visitor]


async def _smtp(h: Harness, host: str, port: int) -> None:
    async with h.hub.db.transaction() as db:
        await mail.save(
            db,
            h.hub.keyring,
            host=host,
            port=str(port),
            security="none",
            username="",
            password="",
            sender="hub@example.com",
            actor="operator",
            now=h.clock(),
        )


async def mail_out(h: Harness) -> int:
    """What the runner's outbox sends now (its other work is left alone); how many were sent."""
    source = Runner(h.hub).outbox
    return sum(await asyncio.gather(*await source.claim(source.slots)))


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    text: str = part.get_content()
    return text


async def test_a_sign_in_from_a_new_browser_is_mailed_to_the_member(
    harness: Harness, visitors: Visitors, smtp_server: SmtpServer
) -> None:
    h = harness
    await _smtp(h, smtp_server.host, smtp_server.port)
    person = await make_member(h, Role.DEVELOPER)
    first = visitors()
    await first.sign_in(person)
    assert smtp_server.messages == []  # the answer never waits for the mail server
    assert await mail_out(h) == 1
    (alert,) = smtp_server.messages
    assert alert["To"] == person.email
    assert alert["Subject"] == "New sign-in to the bankhub dashboard"
    body = _body(alert)
    assert "Address: 127.0.0.1" in body
    assert "Browser: python-httpx/" in body
    cookie = first.client.cookies.get("bankhub_dash_device")
    assert cookie
    assert len(cookie) >= 40

    # the same browser again: nothing new
    await first.get("/dashboard")
    assert (await first.post("/dashboard/sign-out")).status_code == 303
    h.clock.advance(seconds=30)
    await first.sign_in(person)
    assert await mail_out(h) == 0
    assert len(smtp_server.messages) == 1

    # another browser: mailed again
    h.clock.advance(seconds=30)
    await visitors().sign_in(person)
    assert await mail_out(h) == 1
    assert len(smtp_server.messages) == 2
    async with h.hub.db.transaction() as db:
        entries = list(
            (
                await db.execute(
                    select(AuditEntry).where(AuditEntry.action == "member.new_browser")
                )
            ).scalars()
        )
    assert len(entries) == 2


async def test_a_mail_server_that_is_down_does_not_stop_signing_in(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    await _smtp(h, "127.0.0.1", free_port("127.0.0.1"))  # nobody listens there
    person = await make_member(h, Role.VIEWER)
    v = visitors()
    await v.sign_in(person)  # asserts the redirect to the overview
    assert (await v.get("/dashboard")).status_code == 200


async def test_consent_notices_are_mailed_to_owners_and_admins(
    harness: Harness, smtp_server: SmtpServer
) -> None:
    h = harness
    await _smtp(h, smtp_server.host, smtp_server.port)
    owner = await make_member(h, Role.OWNER)
    admin = await make_member(h, Role.ADMIN)
    await make_member(h, Role.DEVELOPER)  # not told: cannot act on consents
    payload = await connect(h, "user_good")
    login_id = payload["login_id"]
    runner = Runner(h.hub)
    assert await runner.consent.sweep() == 0
    assert await mail_out(h) == 0
    assert smtp_server.messages == []

    h.clock.advance(days=83, hours=1)  # 7 days left
    assert await runner.consent.sweep() == 1
    assert await mail_out(h) == 2
    assert sorted(m["To"] for m in smtp_server.messages) == sorted([owner.email, admin.email])
    first = smtp_server.messages[0]
    assert first["Subject"] == "bankhub: 1 consents ending soon, 0 expired"
    assert f": login {login_id}: consent ends in 7 days, at" in _body(first)
    assert await runner.consent.sweep() == 0  # told once
    assert await mail_out(h) == 0
    assert len(smtp_server.messages) == 2

    h.clock.advance(days=7)  # past the end
    assert await runner.consent.sweep() == 1
    assert await mail_out(h) == 2
    assert len(smtp_server.messages) == 4
    last = smtp_server.messages[-1]
    assert last["Subject"] == "bankhub: 0 consents ending soon, 1 expired"
    assert f"login {login_id}: consent expired at" in _body(last)


async def test_without_mail_settings_the_sweep_still_works(harness: Harness) -> None:
    h = harness
    await make_member(h, Role.OWNER)
    await connect(h, "user_consent_short")
    assert await Runner(h.hub).consent.sweep() == 1
    assert await mail_out(h) == 0  # nothing was queued
