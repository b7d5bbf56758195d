"""Mail to the team: sign-in alerts and consent-expiry notices, through the SMTP settings.

**Sign-in alerts.** Each browser that signs in gets a long-lived random cookie
(``bankhub.dashboard.devices``); the member's row
keeps only keyed hashes of the browsers they used (the newest :data:`MAX_DEVICES`). A full
sign-in from a browser not on that list is mailed to the member: when, from which address, which
browser, and what to do if it was not them. Enrolment (the first sign-in) registers the browser
without an alert. The mail leaves after the answer (a background task); a mail failure is
logged and never blocks signing in.

**Consent-expiry notices.** The runner's consent sweep (``bankhub.jobs.runner``) tells apps
through ``consent.expiring`` and ``login.status`` events; it hands the same notices to
:func:`mail_consent_notices`, which mails one summary per sweep to every member whose role may
act on them in Consent Control (owner and admin). The webhooks stay the reliable channel: a mail
that cannot be sent is logged, not retried.

Without SMTP settings nothing is mailed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from bankhub.dashboard import mail, roles
from bankhub.dashboard.models import Member
from bankhub.db.engine import Database
from bankhub.partners.models import App
from bankhub.security import tls
from bankhub.security.keyring import Keyring
from bankhub.security.secrets import SecretHasher

log = logging.getLogger("bankhub.dashboard.alerts")

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


async def send_alert(
    database: Database, keyring: Keyring, ca_bundle: Path | None, alert: NewBrowser
) -> None:
    """Mail the alert if outgoing mail is set up (run after the answer was sent); ``ca_bundle``
    is ``BANKHUB_CA_BUNDLE``, what the mail server's certificate is checked against."""
    async with database.transaction() as db:
        config = await mail.load(db, keyring)
    if config is None:
        return
    try:
        await mail.send(config, alert_mail(config, alert), tls.outbound_ssl_context(ca_bundle))
    except mail.MailError as exc:
        log.warning("sign-in alert to a member could not be mailed: %s", exc)


# --- consent-expiry notices ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentNotice:
    app_id: int
    login_id: int
    expires_at: datetime
    #: days left (7, then 1), or 0 when the consent has expired
    days_left: int


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


async def mail_consent_notices(
    database: Database,
    keyring: Keyring,
    ca_bundle: Path | None,
    notices: Sequence[ConsentNotice],
) -> int:
    """One summary to each member who may act on consents; returns the messages sent."""
    if not notices:
        return 0
    async with database.transaction() as db:
        config = await mail.load(db, keyring)
        if config is None:
            return 0
        members = [
            m
            for m in (await db.execute(select(Member).order_by(Member.id))).scalars()
            if roles.allows(m.role, roles.Action.CONSENT_MANAGE) and m.totp_confirmed_at
        ]
        ids = {n.app_id for n in notices}
        apps = {a.id: a for a in (await db.execute(select(App).where(App.id.in_(ids)))).scalars()}
    context = tls.outbound_ssl_context(ca_bundle)
    sent = 0
    for member in members:
        try:
            await mail.send(config, consent_mail(config, member.email, notices, apps), context)
            sent += 1
        except mail.MailError as exc:
            # the server is down or refuses us: the others would wait and fail the same way
            log.warning("consent notices could not be mailed: %s", exc)
            break
    return sent
