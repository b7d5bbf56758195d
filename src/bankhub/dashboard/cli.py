"""``bankhub team``: the first owner's bootstrap link, invitations and the member list."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

import typer

from bankhub.cli_common import base_url, err, migrate, out, settings_or_exit
from bankhub.clock import utcnow
from bankhub.dashboard import mail, services
from bankhub.dashboard.pages import PREFIX
from bankhub.dashboard.roles import Role
from bankhub.db.engine import Database
from bankhub.security import tls
from bankhub.security.keyring import open_keyring
from bankhub.security.secrets import SecretHasher

team_cli = typer.Typer(no_args_is_help=True, help="The dashboard's team: invitations, members.")
OPERATOR = "operator:cli"


@team_cli.command("invite")
def invite(
    email: Annotated[str, typer.Argument(help="the new member's email address")],
    role: Annotated[Role, typer.Option(help="owner, admin, developer or viewer")] = Role.VIEWER,
) -> None:
    """Print a single-use invitation link (and mail it when outgoing mail is set up)."""
    settings = settings_or_exit()
    migrate(settings)

    async def work() -> tuple[str, str, mail.SmtpConfig | None]:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                keyring = await open_keyring(settings, session)
                issued = await services.invite(
                    session,
                    SecretHasher(settings.resolved_secret_key()),
                    utcnow(),
                    email,
                    role,
                    OPERATOR,
                    settings,
                )
                config = await mail.load(session, keyring)
            return issued.invite.email, issued.token, config
        finally:
            await db.dispose()

    try:
        address, token, config = asyncio.run(work())
    except services.FormError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    link = f"{base_url(settings)}{PREFIX}/invite/{token}"
    out.print(f"Invitation for {address} as {role.value} (works once):", highlight=False)
    out.print(link, highlight=False, soft_wrap=True)
    if config is None:
        out.print("Outgoing mail is not set up: send the link yourself.")
        return
    message = mail.invite_mail(config, address, link, role.value, "The operator")
    try:
        asyncio.run(mail.send(config, message, tls.outbound_ssl_context(settings.ca_bundle)))
    except mail.MailError as exc:
        err.print(f"[yellow]the invitation could not be mailed: {exc}[/yellow]")
        raise typer.Exit(1) from None
    out.print(f"Mailed to {address}.", highlight=False)


@team_cli.command("bootstrap")
def bootstrap(
    email: Annotated[str, typer.Argument(help="the first owner's email address")],
    minutes: Annotated[int, typer.Option(help="how long the link works (1 to 1440 minutes)")] = int(
        services.BOOTSTRAP_LIFETIME.total_seconds() // 60
    ),
) -> None:
    """Print the single-use link that creates the team's first owner (while it has none).

    Outside dev this is the only way to the first owner. The link works once, for an hour
    unless --minutes says otherwise; a newer one replaces it. Audited.
    """
    settings = settings_or_exit()
    migrate(settings)

    async def work() -> services.IssuedInvite:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                return await services.bootstrap(
                    session,
                    SecretHasher(settings.resolved_secret_key()),
                    utcnow(),
                    email,
                    settings,
                    timedelta(minutes=minutes),
                )
        finally:
            await db.dispose()

    try:
        issued = asyncio.run(work())
    except services.FormError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    link = f"{base_url(settings)}{PREFIX}/invite/{issued.token}"
    until = issued.invite.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    out.print(
        f"The first owner's link for {issued.invite.email} (works once, until {until}):",
        highlight=False,
    )
    out.print(link, highlight=False, soft_wrap=True)


@team_cli.command("list")
def list_members() -> None:
    """The members, their roles and whether two-factor sign-in is set up."""
    settings = settings_or_exit()
    migrate(settings)

    async def work() -> list[tuple[str, str, bool]]:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                return [
                    (m.email, m.role, services.enrolled(m))
                    for m in await services.list_members(session)
                ]
        finally:
            await db.dispose()

    for email, role, enrolled in asyncio.run(work()):
        state = "two-factor set up" if enrolled else "two-factor pending"
        out.print(f"{email}\t{role}\t{state}", highlight=False)
