"""Mail to the team: sign-in alerts and consent-expiry notices, through the SMTP settings.

**Sign-in alerts.** Each browser that signs in gets a long-lived random cookie
(``bankhub.dashboard.devices``); the member's row
keeps only keyed hashes of the browsers they used (the newest :data:`MAX_DEVICES`). A full
sign-in from a browser not on that list is mailed to the member: when, from which address, which
browser, and what to do if it was not them. Enrolment (the first sign-in) registers the browser
without an alert. The alert is queued in the outbox (``jobs.outbox``) in the sign-in's own
unit of work and mailed by the runner after the commit: a slow or failing mail server never
holds up signing in, and a mail that fails is retried.

**Consent-expiry notices.** The consent sweep (``bankhub.logins.consent``) tells apps through
``consent.expiring`` and ``login.status`` events; in the same unit of work it hands the notices
to :func:`queue_consent_notices`, which queues one summary per sweep for every member whose role
may act on them in Consent Control (owner and admin).

**Key source alerts.** A key source (``bankhub.signatures.sync``) whose sync fails after a
good one, or whose grace runs out, is told in one mail to every member whose role may manage the
app's keys (owner and admin).

Without SMTP settings when the mail would be queued, nothing is queued; settings removed
before it was sent fail it (``failed``, with the reason). :class:`TeamMail` holds the outbox's
handlers for both kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.dashboard import mail, roles
from bankhub.dashboard.models import Member
from bankhub.db.engine import Database
from bankhub.jobs import outbox
from bankhub.logins.consent import ConsentNotice
from bankhub.partners.models import App
from bankhub.security import tls
from bankhub.security.crypto import Cipher
from bankhub.security.secrets import SecretHasher

#: the outbox's kinds of message (``jobs.outbox``)
SIGN_IN_ALERT = "mail.sign_in_alert"
CONSENT_NOTICES = "mail.consent_notices"
KEY_SOURCE_ALERT = "mail.key_source_alert"

DEVICE_PURPOSE = "dashboard-device"
#: browsers remembered per member; the oldest is forgotten first
MAX_DEVICES = 20


def remember(hasher: SecretHasher, member: Member, token: str) -> bool:
    """Add the browser to the member's list; True when it was not on it."""
    digest = hasher.hash(token, purpose=DEVICE_PURPOSE)
    known = list(member.known_devices or [])
    new = digest not in known
    if not new:
        known.remove(digest)
    member.known_devices = [*known, digest][-MAX_DEVICES:]
    return new


def plain(text: str, limit: int) -> str:
    """Text from a browser or an app, printable and bounded, for a mail."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:limit]


@dataclass(frozen=True, slots=True)
class NewBrowser:
    email: str
    at: datetime
    address: str
    agent: str


def alert_mail(config: mail.SmtpConfig, alert: NewBrowser) -> EmailMessage:
    body = (
        "Someone signed in to the bankhub dashboard as you from a browser not used before.\n\n"
        f"When: {alert.at:%Y-%m-%d %H:%M} UTC\n"
        f"Address: {alert.address}\n"
        f"Browser: {alert.agent}\n\n"
        "If this was you, there is nothing to do.\n"
        "If it was not, sign in, and ask an owner to remove and re-invite you, which ends every "
        "session; your password and your authenticator app are no longer safe.\n"
    )
    return mail.message(config, alert.email, "New sign-in to the bankhub dashboard", body)


async def queue_alert(session: AsyncSession, alert: NewBrowser, now: datetime) -> bool:
    """Queue the alert in the sign-in's unit of work if outgoing mail is set up; whether it was."""
    if await mail.stored(session) is None:
        return False
    outbox.enqueue(session, SIGN_IN_ALERT, msgspec.to_builtins(alert), now)
    return True


# --- consent-expiry notices ---------------------------------------------------------------------


def _line(notice: ConsentNotice, apps: dict[int, App]) -> str:
    app = apps.get(notice.app_id)
    name = plain(app.name, 200) if app else f"app {notice.app_id}"
    when = f"{notice.expires_at:%Y-%m-%d %H:%M} UTC"
    if notice.days_left <= 0:
        return f"- {name}: login {notice.login_id}: consent expired at {when}"
    days = "1 day" if notice.days_left == 1 else f"{notice.days_left} days"
    return f"- {name}: login {notice.login_id}: consent ends in {days}, at {when}"


def consent_mail(
    config: mail.SmtpConfig, to: str, notices: Sequence[ConsentNotice], apps: dict[int, App]
) -> EmailMessage:
    ordered = sorted(notices, key=lambda n: (n.expires_at, n.app_id, n.login_id))
    expired = sum(1 for n in ordered if n.days_left <= 0)
    subject = f"bankhub: {len(ordered) - expired} consents ending soon, {expired} expired"
    body = (
        "Bank consents of your apps' end users that end soon or have ended. The apps were told "
        "through their webhooks (consent.expiring, login.status); the end user renews a consent "
        "by reconnecting.\n\n"
        + "\n".join(_line(n, apps) for n in ordered)
        + "\n\nConsent Control in the dashboard lists every login with its consent expiry.\n"
    )
    return mail.message(config, to, subject, body)


async def queue_consent_notices(
    session: AsyncSession, notices: Sequence[ConsentNotice], now: datetime
) -> int:
    """Queue one summary for each member who may act on consents, in the sweep's unit of work;
    how many."""
    if not notices or await mail.stored(session) is None:
        return 0
    members = [
        m
        for m in (await session.execute(select(Member).order_by(Member.id))).scalars()
        if roles.allows(m.role, roles.Action.CONSENT_MANAGE) and m.totp_confirmed_at
    ]
    listed = msgspec.to_builtins(list(notices))
    for member in members:
        outbox.enqueue(session, CONSENT_NOTICES, {"to": member.email, "notices": listed}, now)
    return len(members)


# --- key source alerts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeySourceAlert:
    """A key source of an app failed after a good sync (``failing``), or its grace ran out and
    its keys were revoked (``expired``)."""

    event: str
    app_name: str
    client_id: str
    url: str
    error: str
    at: datetime
    #: when the source's keys stop working unless a sync succeeds first
    grace_until: datetime | None


def key_source_mail(config: mail.SmtpConfig, to: str, alert: KeySourceAlert) -> EmailMessage:
    app = plain(alert.app_name, 200)
    if alert.event == "expired":
        subject = f"bankhub: the signature keys synced for {app} were revoked"
        what = (
            "The source's grace time ran out without a good sync: the keys it brought are "
            "revoked, and requests signed with them are refused. They come back at the next good "
            "sync."
        )
    else:
        until = f"{alert.grace_until:%Y-%m-%d %H:%M} UTC" if alert.grace_until else "soon"
        subject = f"bankhub: the signature key source of {app} cannot be synced"
        what = (
            "bankhub keeps the keys of the last good sync until "
            f"{until}; if no sync succeeds by then, they are revoked."
        )
    body = (
        f"A signature key source of the app {app} ({plain(alert.client_id, 100)}) failed.\n\n"
        f"Source: {plain(alert.url, 300)}\n"
        f"When: {alert.at:%Y-%m-%d %H:%M} UTC\n"
        f"Error: {plain(alert.error, 300)}\n\n"
        f"{what}\n\n"
        "The app's Signatures page in the dashboard shows the source's state and syncs it on "
        "demand.\n"
    )
    return mail.message(config, to, subject, body)


async def queue_key_source_alert(
    session: AsyncSession, alert: KeySourceAlert, now: datetime
) -> int:
    """Queue the alert for each member who may manage keys, in the sync's unit of work; how
    many."""
    if await mail.stored(session) is None:
        return 0
    members = [
        m
        for m in (await session.execute(select(Member).order_by(Member.id))).scalars()
        if roles.allows(m.role, roles.Action.KEYS_MANAGE) and m.totp_confirmed_at
    ]
    payload = msgspec.to_builtins(alert)
    for member in members:
        outbox.enqueue(session, KEY_SOURCE_ALERT, {"to": member.email, "alert": payload}, now)
    return len(members)


class TeamMail:
    """Sends the outbox's mails (its handlers, by kind) through the SMTP settings of the moment.

    A mail server that is down or refuses the message raises ``mail.MailError``: the outbox
    tries again later. Settings removed since the mail was queued fail it for good.
    """

    def __init__(self, db: Database, box: Cipher, ca_bundle: Path | None) -> None:
        self.db = db
        self.box = box
        self.ca_bundle = ca_bundle

    @property
    def handlers(self) -> dict[str, outbox.Handler]:
        return {
            SIGN_IN_ALERT: self.sign_in_alert,
            CONSENT_NOTICES: self.consent_notices,
            KEY_SOURCE_ALERT: self.key_source_alert,
        }

    async def _config(self) -> mail.SmtpConfig:
        async with self.db.transaction() as db:
            config = await mail.load(db, self.box)
        if config is None:
            raise outbox.Permanent("outgoing mail is not set up any more")
        return config

    async def sign_in_alert(self, payload: Mapping[str, Any]) -> None:
        alert = msgspec.convert(payload, NewBrowser)
        config = await self._config()
        context = tls.outbound_ssl_context(self.ca_bundle)
        await mail.send(config, alert_mail(config, alert), context)

    async def consent_notices(self, payload: Mapping[str, Any]) -> None:
        notices = msgspec.convert(payload["notices"], list[ConsentNotice])
        config = await self._config()
        ids = {n.app_id for n in notices}
        async with self.db.transaction() as db:
            apps = {
                a.id: a for a in (await db.execute(select(App).where(App.id.in_(ids)))).scalars()
            }
        message = consent_mail(config, str(payload["to"]), notices, apps)
        await mail.send(config, message, tls.outbound_ssl_context(self.ca_bundle))

    async def key_source_alert(self, payload: Mapping[str, Any]) -> None:
        alert = msgspec.convert(payload["alert"], KeySourceAlert)
        config = await self._config()
        message = key_source_mail(config, str(payload["to"]), alert)
        await mail.send(config, message, tls.outbound_ssl_context(self.ca_bundle))
