"""``bankhub eidas check``: the QWAC and QSealC each XS2A bank is reached with, checked as
start-up checks them (``serve`` and ``worker`` refuse to start on the first fault), and with
``--connect`` tried on the bank itself.

The try is a signed ``GET /v1/consents/{id}/status`` over mutual TLS for a consent id the bank
cannot know: a bank that accepts the certificates and the signature answers that the consent is
unknown; one that refuses them says so (a TLS alert, or ``CERTIFICATE_*``, ``ROLE_INVALID``,
``SIGNATURE_*``). Nothing is created at the bank.

The command sees the banks imported into the database (``bankhub banks import``, enabled or not)
as well as the catalogue file's. Start-up checks the file's banks and the enabled imported ones
that the database already holds (an imported bank may name certificate files of its own); a
database not created or not migrated yet holds none.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.markup import escape
from sqlalchemy import inspect, make_url
from sqlalchemy.exc import SQLAlchemyError

from bankhub.banks import services as banks
from bankhub.catalogue import Catalogue, Service, default_catalogue, load_catalogue
from bankhub.cli_common import err, migrate, out, settings_or_exit
from bankhub.clock import utcnow
from bankhub.config import Settings
from bankhub.connectors.base import ConnectorFailure, ConsentExpired
from bankhub.connectors.ukob.client import UkobClient
from bankhub.connectors.ukob.params import UkobParams
from bankhub.connectors.xs2a.client import Xs2aClient
from bankhub.connectors.xs2a.params import InstitutionConfigError, Xs2aParams
from bankhub.connectors.xs2a.signing import RequestSigner
from bankhub.db.engine import Database
from bankhub.security import eidas
from bankhub.security.keyring import KeyringError, load_keks
from bankhub.security.tls import InstitutionClients, outbound_ssl_context

eidas_cli = typer.Typer(no_args_is_help=True, help="eIDAS certificates (QWAC, QSealC) for XS2A.")


def _catalogue(settings: Settings) -> Catalogue:
    """A catalogue of this command's own: imported banks are set on it, never on the shared
    default."""
    if settings.catalogue_file:
        return load_catalogue(settings.catalogue_file)
    return default_catalogue().copy()


async def _imported(settings: Settings, *, if_migrated: bool = False) -> list[Service]:
    db = Database(settings.resolved_database_url())
    try:
        if if_migrated:
            async with db.engine.connect() as connection:
                if not await connection.run_sync(lambda c: inspect(c).has_table("banks")):
                    return []  # not migrated to the registry yet: nothing imported
        async with db.transaction() as session:
            return await banks.load_services(session)
    finally:
        await db.dispose()


def _with_imported(settings: Settings, catalogue: Catalogue) -> Catalogue:
    """The catalogue with the banks imported into the database (migrated first, as every
    command that reads the database does)."""
    migrate(settings)
    catalogue.set_imported(asyncio.run(_imported(settings)), None)
    return catalogue


def _enabled_imported(settings: Settings) -> list[Service]:
    """Start-up's view of the imported banks: the enabled ones, read without creating or
    migrating anything (that comes after the checks). A database that is not there yet, or has
    no ``banks`` table yet, holds none. One that cannot be read is said in a warning line and
    start-up goes on: what follows the checks reports an unreachable database its own way."""
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return []
    try:
        return [s for s in asyncio.run(_imported(settings, if_migrated=True)) if s.listed]
    except (SQLAlchemyError, OSError) as exc:
        err.print(
            "[yellow]warning:[/yellow] the certificates of imported banks were not checked: "
            f"the database cannot be read ({escape(type(exc).__name__)})",
            soft_wrap=True,
        )
        return []


def _services(catalogue: Catalogue, only: int | None) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (_label(s), s.connector, s.params)
        for s in catalogue.services
        if only is None or s.id == only
    ]


def check_or_exit(settings: Settings) -> None:
    """Start-up: every configured eIDAS credential usable for every bank that takes one, or the
    command stops with one line naming the file (or setting) and what is wrong."""
    try:
        eidas.check_catalogue(settings, _services(_catalogue(settings), None), utcnow())
        imported = [(_label(s), s.connector, s.params) for s in _enabled_imported(settings)]
        if imported:
            eidas.check_catalogue(settings, imported, utcnow())
    except eidas.EidasError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


@eidas_cli.command("check")
def check(
    service: Annotated[int | None, typer.Argument(help="only this service id")] = None,
    connect: Annotated[
        bool, typer.Option("--connect", help="also try the certificates on each bank")
    ] = False,
) -> None:
    """Check the QWAC and QSealC of every XS2A bank (or one): dates, key, PSD2 role."""
    settings = settings_or_exit()
    catalogue = _catalogue(settings)
    try:
        # the operator's certificates first: a bad one stops the command before the database
        eidas.check_catalogue(settings, [], utcnow())
    except eidas.EidasError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    catalogue = _with_imported(settings, catalogue)
    if service is not None and catalogue.get(service) is None:
        err.print(f"[red]no service {service} in the catalogue[/red]")
        raise typer.Exit(2)
    try:
        found = eidas.check_catalogue(settings, _services(catalogue, service), utcnow())
    except eidas.EidasError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    if not found:
        out.print("no XS2A or UK Open Banking bank in the catalogue")
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
    if connect:
        refused = 0
        for bank in found:
            entry = next(s for s in catalogue.services if _label(s) == bank.bank)
            ok, said = asyncio.run(_try(settings, entry, bank))
            refused += not ok
            out.print(f"{bank.bank}: {said}", highlight=False, soft_wrap=True)
        if refused:
            raise typer.Exit(2)


@eidas_cli.command("seal")
def seal(
    key_file: Annotated[Path, typer.Argument(help="the PEM private key to seal")],
    out_file: Annotated[Path, typer.Option("--out", help="where to write the sealed key")],
) -> None:
    """Seal a QWAC or QSealC private key under the key-encryption key (BANKHUB_KEK), for
    storage; name the sealed file in BANKHUB_XS2A_*_KEY_FILE and remove the clear one."""
    settings = settings_or_exit()
    try:
        raw = key_file.read_bytes()
    except OSError as exc:
        err.print(f"[red]{escape(str(key_file))}: {escape(exc.strerror or str(exc))}[/red]")
        raise typer.Exit(2) from None
    if eidas.is_sealed(raw) or b"PRIVATE KEY-----" not in raw:
        err.print(f"[red]{escape(str(key_file))}: not a PEM private key[/red]")
        raise typer.Exit(2)
    try:
        kek = load_keks(settings)[0]
    except KeyringError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    try:
        # created 0600 in one step, and never over an existing file
        descriptor = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        err.print(f"[red]{escape(str(out_file))}: {escape(exc.strerror or str(exc))}[/red]")
        raise typer.Exit(2) from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(eidas.seal_key(raw, kek))
    out.print(f"sealed under {kek.id}: {out_file}", highlight=False)


def _label(service: Service) -> str:
    return f"service {service.id} ({service.name})"


async def _try(
    settings: Settings, service: Service, credentials: eidas.BankCredentials
) -> tuple[bool, str]:
    """Whether the bank accepts bankhub's certificates and signature, and what it said."""
    if service.connector == "ukob":
        return await _try_ukob(settings, service, credentials)
    try:
        params = Xs2aParams.from_institution({**service.params, "name": service.name})
    except InstitutionConfigError as exc:
        return False, str(exc)
    shared = httpx.AsyncClient(
        verify=outbound_ssl_context(settings.ca_bundle), trust_env=False, follow_redirects=False
    )
    clients = InstitutionClients(shared, settings.connector_timeout_seconds, settings.ca_bundle)
    seal = credentials.qseal
    signer = RequestSigner(seal.certificate, seal.key, utcnow) if seal is not None else None
    http = clients.client_for(service.params, credentials.qwac)
    client = Xs2aClient(http, params, utcnow, lambda: None, signer)
    probe = f"bankhub-check-{uuid.uuid4().hex[:12]}"
    try:
        await client.call("GET", f"/v1/consents/{probe}/status", stage="read")
    except ConsentExpired:
        return True, "the bank accepts the certificates and the signature"
    except ConnectorFailure as failure:
        return False, f"refused: {failure.message}"
    finally:
        await clients.aclose()
        await shared.aclose()
    return True, "the bank accepts the certificates and the signature"


async def _try_ukob(
    settings: Settings, service: Service, credentials: eidas.BankCredentials
) -> tuple[bool, str]:
    """A UK Open Banking bank: a client-credentials token over mutual TLS (nothing created)."""
    try:
        params = UkobParams.from_institution({**service.params, "name": service.name})
    except InstitutionConfigError as exc:
        return False, str(exc)
    shared = httpx.AsyncClient(
        verify=outbound_ssl_context(settings.ca_bundle), trust_env=False, follow_redirects=False
    )
    clients = InstitutionClients(shared, settings.connector_timeout_seconds, settings.ca_bundle)
    key = credentials.qseal.key if credentials.qseal is not None else None
    http = clients.client_for(service.params, credentials.qwac)
    try:
        return True, await UkobClient(http, params, utcnow, lambda: None, key).probe()
    except ConnectorFailure as failure:
        return False, f"refused: {failure.message}"
    finally:
        await clients.aclose()
        await shared.aclose()
