"""What every ``bankhub`` command shares: the consoles, settings and the schema upgrade."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub import supervision
from bankhub.config import ConfigError, Settings
from bankhub.db import migrate as migrations
from bankhub.db.engine import Database
from bankhub.errors import DomainError

T = TypeVar("T")

out = Console()
err = Console(stderr=True)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the configuration error that names the variable."""
    try:
        settings = Settings()
        settings.resolved_secret_key()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    return settings


def base_url(settings: Settings) -> str:
    """Where links printed by a command point: the configured public URL, else the address the
    ``serve`` running on this data dir listens on (it may have been given ``--port``), else
    the configured host and port."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if settings.database_url is None:
        served = supervision.served_url(settings.data_dir)
        if served:
            return served.rstrip("/")
    scheme = "https" if settings.tls_on else "http"
    return f"{scheme}://{url_host(settings.host)}:{settings.port}"


def url_host(host: str) -> str:
    """``host`` as it stands in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def migrate(settings: Settings) -> None:
    if settings.database_url is None:
        settings.make_data_dir()
    migrations.upgrade(settings.resolved_migration_url())


def in_one_transaction(
    settings: Settings,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    describe: Callable[[DomainError], str] = lambda exc: exc.message,
    highlight: bool | None = None,
) -> T:
    """Run ``work`` in one unit of work on the configured database; a refusal of the domain
    ends the command with exit 2 and ``describe(error)`` in red."""

    async def run() -> T:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except DomainError as exc:
        err.print(f"[red]{describe(exc)}[/red]", highlight=highlight)
        raise typer.Exit(2) from None
