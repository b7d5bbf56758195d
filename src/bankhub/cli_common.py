"""What every ``bankhub`` command shares: the consoles, settings and the schema upgrade."""

from __future__ import annotations

import typer
from rich.console import Console

from bankhub.config import ConfigError, Settings
from bankhub.db import migrate as migrations

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


def migrate(settings: Settings) -> None:
    if settings.database_url is None:
        settings.make_data_dir()
    migrations.upgrade(settings.resolved_migration_url())
