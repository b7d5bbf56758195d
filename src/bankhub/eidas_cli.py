"""``bankhub eidas check``: the QWAC and QSealC each XS2A bank is reached with, checked as
start-up checks them (``serve`` and ``worker`` refuse to start on the first fault)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from bankhub.catalogue import Catalogue, default_catalogue, load_catalogue
from bankhub.cli_common import err, out, settings_or_exit
from bankhub.clock import utcnow
from bankhub.config import Settings
from bankhub.security import eidas

eidas_cli = typer.Typer(no_args_is_help=True, help="eIDAS certificates (QWAC, QSealC) for XS2A.")


def _catalogue(settings: Settings) -> Catalogue:
    return (
        load_catalogue(settings.catalogue_file) if settings.catalogue_file else default_catalogue()
    )


def _services(catalogue: Catalogue, only: int | None) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (f"service {s.id} ({s.name})", s.connector, s.params)
        for s in catalogue.services
        if only is None or s.id == only
    ]


def check_or_exit(settings: Settings) -> None:
    """Start-up: every configured eIDAS credential usable for every bank that takes one, or the
    command stops with one line naming the file (or setting) and what is wrong."""
    try:
        eidas.check_catalogue(settings, _services(_catalogue(settings), None), utcnow())
    except eidas.EidasError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


@eidas_cli.command("check")
def check(
    service: Annotated[int | None, typer.Argument(help="only this service id")] = None,
) -> None:
    """Check the QWAC and QSealC of every XS2A bank (or one): dates, key, PSD2 role."""
    settings = settings_or_exit()
    catalogue = _catalogue(settings)
    if service is not None and catalogue.get(service) is None:
        err.print(f"[red]no service {service} in the catalogue[/red]")
        raise typer.Exit(2)
    try:
        found = eidas.check_catalogue(settings, _services(catalogue, service), utcnow())
    except eidas.EidasError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    if not found:
        out.print("no XS2A bank in the catalogue")
    for bank in found:
        out.print(f"{bank.bank}:", highlight=False)
        for label, variable, credential in (
            ("QWAC", "BANKHUB_XS2A_QWAC_*", bank.qwac),
            ("QSealC", "BANKHUB_XS2A_QSEAL_*", bank.qseal),
        ):
            if credential is None:
                out.print(f"  {label}: none configured ({variable})", highlight=False)
            else:
                out.print(f"  ok: {credential.describe()}", highlight=False, soft_wrap=True)
