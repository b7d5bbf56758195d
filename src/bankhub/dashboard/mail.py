"""Outgoing mail: the SMTP server the team configured, and the messages the dashboard sends.

The settings live in one row (``smtp_settings``); its password is encrypted with the keyring.
Mail goes out through the standard library's ``smtplib`` in a worker thread, with a timeout, and
TLS (implicit or STARTTLS) verified against the configured trust store (S31).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.dashboard.models import SmtpSettings
from bankhub.dashboard.services import FormError, normalise_email
from bankhub.security.crypto import Cipher, associated_data

ROW_ID = 1
TIMEOUT_SECONDS = 10.0


class Security(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class MailError(RuntimeError):
    """The message could not be handed to the server; the text says why, for the operator."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    security: Security
    username: str | None
    password: str | None
    sender: str


def _aad() -> bytes:
    return associated_data("-", "smtp_settings", "password", ROW_ID)


async def load(session: AsyncSession, box: Cipher) -> SmtpConfig | None:
    row = await session.get(SmtpSettings, ROW_ID)
    if row is None:
        return None
    password = box.decrypt_text(row.password_enc, _aad()) if row.password_enc else None
    return SmtpConfig(
        row.host, row.port, Security(row.security), row.username, password, row.sender
    )


async def stored(session: AsyncSession) -> SmtpSettings | None:
    return await session.get(SmtpSettings, ROW_ID)


def _host(text: str) -> str:
    host = text.strip().lower()
    ok = 0 < len(host) <= 253 and all(ch.isalnum() or ch in ".-:[]" for ch in host)
    if not ok:
        raise FormError("Enter the mail server's host name or address.")
    return host


async def save(
    session: AsyncSession,
    box: Cipher,
    *,
    host: str,
    port: str,
    security: str,
    username: str,
    password: str,
    sender: str,
    actor: str,
    now: datetime,
) -> SmtpSettings:
    """Validate and store; an empty password keeps the stored one (it is never shown)."""
    try:
        port_number = int(port)
    except ValueError:
        port_number = 0
    if not 0 < port_number < 65536:
        raise FormError("The port is a number from 1 to 65535.")
    try:
        mode = Security(security)
    except ValueError:
        raise FormError("Choose none, STARTTLS or TLS.") from None
    if len(username) > 200 or len(password) > 500:
        raise FormError("The user name or password is too long.")
    row = await session.get(SmtpSettings, ROW_ID)
    values = {
        "host": _host(host),
        "port": port_number,
        "security": mode.value,
        "username": username.strip() or None,
        "sender": normalise_email(sender),
        "updated_by": actor[:260],
        "updated_at": now,
    }
    if row is None:
        row = SmtpSettings(id=ROW_ID, **values)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    if password:
        row.password_enc = box.encrypt_text(password, _aad())
    elif not values["username"]:
        row.password_enc = None
    await session.flush()
    return row


def message(config: SmtpConfig, to: str, subject: str, body: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = config.sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(domain=config.sender.partition("@")[2] or None)
    mail.set_content(body)
    return mail


def _send(config: SmtpConfig, mail: EmailMessage, context: ssl.SSLContext) -> None:
    smtp: smtplib.SMTP
    if config.security is Security.TLS:
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=TIMEOUT_SECONDS, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=TIMEOUT_SECONDS)
    with smtp:
        if config.security is Security.STARTTLS:
            smtp.starttls(context=context)
        if config.username and config.password:
            smtp.login(config.username, config.password)
        smtp.send_message(mail)


async def send(config: SmtpConfig, mail: EmailMessage, context: ssl.SSLContext) -> None:
    """Hand ``mail`` to the server; MailError with a short reason when that fails."""
    try:
        await asyncio.to_thread(_send, config, mail, context)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def invite_mail(config: SmtpConfig, to: str, link: str, role: str, inviter: str) -> EmailMessage:
    body = (
        f"{inviter} invited you to the bankhub dashboard as {role}.\n\n"
        f"Open this link to choose a password and set up two-factor sign-in:\n{link}\n\n"
        "The link works once. If you did not expect this, ignore this message.\n"
    )
    return message(config, to, "Your invitation to the bankhub dashboard", body)


def test_mail(config: SmtpConfig, to: str) -> EmailMessage:
    body = "This is a test message from the bankhub dashboard: outgoing mail works.\n"
    return message(config, to, "bankhub test message", body)
