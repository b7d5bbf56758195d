"""``bankhub banks``: import a bank registry, enable and disable imported banks, list them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.banks import gocardless, logos, services
from bankhub.banks.formats import FORMATS, Registry, RegistryFileError, read_registry_file
from bankhub.catalogue import default_catalogue, load_catalogue
from bankhub.cli_common import err, migrate, out, settings_or_exit
from bankhub.clock import utcnow
from bankhub.config import Settings
from bankhub.connectors.base import ConnectorFailure
from bankhub.db.engine import Database
from bankhub.security import keyring as kr
from bankhub.security import tls

T = TypeVar("T")
banks_cli = typer.Typer(
    no_args_is_help=True,
    help=(
        "Banks imported from a registry (xs2a-adapter CSV, FinTS institute directory, bankhub "
        "JSON/YAML): docs/banks.md."
    ),
)


class _DryRun(Exception):
    """Rolls the import's unit of work back once its outcome is known."""


def _in_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    migrate(settings)

    async def run() -> T:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction(write=True) as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except services.BankError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None


def _reserved_ids(settings: Settings) -> list[int]:
    """The catalogue file's ids, which imported banks must never take."""
    if settings.catalogue_file:
        return load_catalogue(settings.catalogue_file).base_ids
    return default_catalogue().base_ids


def _outbound(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.connector_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        verify=tls.outbound_ssl_context(settings.ca_bundle),
    )


def _fetch_logos(settings: Settings) -> logos.LogoReport:
    """The imported banks' logos that are due, fetched now (bounded: docs/banks.md)."""

    async def run() -> logos.LogoReport:
        db = Database(settings.resolved_database_url())
        http = _outbound(settings)
        try:
            fetcher = logos.LogoFetcher(http, allow_private=settings.is_dev)
            return await logos.refresh_logos(db, utcnow, fetcher, budget=logos.IMPORT_BUDGET)
        finally:
            await http.aclose()
            await db.dispose()

    return asyncio.run(run())


def _say_logos(report: logos.LogoReport) -> None:
    for refusal in report.refused:
        out.print(
            f"bank {refusal.bank_id}: logo {escape(refusal.url)} refused: {escape(refusal.reason)}",
            soft_wrap=True,
        )
    out.print(
        f"logos: {len(report.kept)} kept, {len(report.refused)} refused, "
        f"{len(report.deferred)} left for the background work",
        soft_wrap=True,
    )


LOGOS_HELP = "fetch the logos that are due once the banks are stored (docs/banks.md)"


def _report(
    path: Path, registry: Registry, outcome: services.ImportOutcome, dry_run: bool
) -> dict[str, Any]:
    return {
        "file": str(path),
        "format": registry.format,
        "dry_run": dry_run,
        "rows": registry.rows,
        "added": len(outcome.added),
        "updated": len(outcome.updated),
        "unchanged": outcome.unchanged,
        "refused": len(registry.refusals),
        "added_ids": outcome.added,
        "updated_ids": outcome.updated,
        "refusals": [{"line": r.line, "reason": r.reason} for r in registry.refusals],
        "notes": [{"line": n.line, "reason": n.reason} for n in registry.notes],
    }


@banks_cli.command("import")
def import_banks(
    file: Annotated[Path, typer.Argument(help="the registry file", dir_okay=False)],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"{' or '.join(FORMATS)}; by default from the name and content (docs/banks.md)",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would change, store nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
    fetch_logos: Annotated[bool, typer.Option("--logos/--no-logos", help=LOGOS_HELP)] = True,
) -> None:
    """Import a registry: new banks are added disabled, known ones updated in place (same
    service id); refused rows are listed with their line and skipped; all in one transaction."""
    settings = settings_or_exit()
    if format is not None and format not in FORMATS:
        err.print(f"[red]--format must be {' or '.join(FORMATS)}[/red]")
        raise typer.Exit(2)
    try:
        registry = read_registry_file(file, format)
    except RegistryFileError as exc:
        err.print(f"[red]{escape(str(file))}: {escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    reserved = _reserved_ids(settings)

    async def work(session: AsyncSession) -> services.ImportOutcome:
        outcome = await services.import_records(
            session, utcnow, registry.records, reserved_ids=reserved
        )
        if dry_run:
            raise _DryRun(outcome)
        return outcome

    try:
        outcome = _in_db(settings, work)
    except _DryRun as rolled_back:
        outcome = rolled_back.args[0]
    report = _report(file, registry, outcome, dry_run)
    fetched = _fetch_logos(settings) if fetch_logos and not dry_run else None
    if fetched is not None:
        report["logos"] = fetched.as_dict()
    if as_json:
        print(json.dumps(report))
        return
    for refusal in registry.refusals:
        out.print(f"line {refusal.line}: skipped: {escape(refusal.reason)}", soft_wrap=True)
    if registry.notes:
        out.print(f"{len(registry.notes)} notes on kept rows (--json lists them)")
    verb = "would be" if dry_run else "were"
    out.print(
        f"{escape(str(file))} ({registry.format}): {registry.rows} rows; "
        f"{len(outcome.added)} banks {verb} added (disabled), {len(outcome.updated)} updated, "
        f"{outcome.unchanged} unchanged, {len(registry.refusals)} rows refused",
        soft_wrap=True,
    )
    if fetched is not None:
        _say_logos(fetched)


def _switch(ids: list[int], every: bool, enabled: bool) -> None:
    if bool(ids) == every:
        err.print("[red]name the bank ids, or --all[/red]")
        raise typer.Exit(2)
    settings = settings_or_exit()

    async def work(session: AsyncSession) -> list[int]:
        return await services.set_enabled(session, utcnow, None if every else ids, enabled)

    changed = _in_db(settings, work)
    state = "enabled" if enabled else "disabled"
    named = f": {', '.join(map(str, changed))}" if 0 < len(changed) <= 20 else ""
    out.print(f"{len(changed)} banks {state}{named}", soft_wrap=True)


@banks_cli.command("enable")
def enable(
    ids: Annotated[list[int] | None, typer.Argument(help="service ids")] = None,
    every: Annotated[bool, typer.Option("--all", help="every imported bank")] = False,
) -> None:
    """Show imported banks to partners (in /service.json and /v2/service, within seconds)."""
    _switch(ids or [], every, True)


@banks_cli.command("disable")
def disable(
    ids: Annotated[list[int] | None, typer.Argument(help="service ids")] = None,
    every: Annotated[bool, typer.Option("--all", help="every imported bank")] = False,
) -> None:
    """Hide imported banks from partners; logins already made with them keep refreshing."""
    _switch(ids or [], every, False)


@banks_cli.command("list")
def list_banks(
    q: Annotated[str | None, typer.Option("--q", help="name, BIC or BLZ")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The imported banks: service id, on/off, name, BIC, BLZ, country, base URL."""
    settings = settings_or_exit()

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {
                "id": b.id,
                "enabled": b.enabled,
                "name": b.name,
                "bic": b.bic,
                "blz": b.blz,
                "country_code": b.country_code,
                "connector": b.connector,
                "base_url": b.params.get("base_url"),
                "key": b.key,
            }
            for b in await services.list_banks(session, q)
        ]

    rows = _in_db(settings, work)
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        flag = "on " if row["enabled"] else "off"
        out.print(
            f"{row['id']:>6} {flag} {escape(row['name'])}  {row['bic']} {row['blz'] or '-'} "
            f"{row['country_code']}  {escape(str(row['base_url']))}",
            soft_wrap=True,
        )
    out.print(f"{len(rows)} banks")


# --- GoCardless Bank Account Data (docs/connectors-gocardless.md) --------------------------------


@banks_cli.command("gocardless-secret")
def gocardless_secret(
    secret_id: Annotated[
        str,
        typer.Option(
            "--secret-id",
            envvar="BANKHUB_GOCARDLESS_SECRET_ID",
            prompt="GoCardless secret id",
            help="the user secret's id (GoCardless portal → User secrets)",
        ),
    ],
    secret_key: Annotated[
        str,
        typer.Option(
            "--secret-key",
            envvar="BANKHUB_GOCARDLESS_SECRET_KEY",
            prompt="GoCardless secret key",
            hide_input=True,
            help="the secret key; prompted for (not echoed) when not given",
        ),
    ],
) -> None:
    """Store the operator's GoCardless secret id and key, encrypted under the keyring; the
    next call obtains a token pair with them and the institutions are imported again."""
    settings = settings_or_exit()
    migrate(settings)

    async def run() -> None:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction(write=True) as session:
                keyring = await kr.open_keyring(settings, session)
                await gocardless.set_secrets(session, keyring, utcnow, secret_id, secret_key)
        finally:
            await db.dispose()

    try:
        asyncio.run(run())
    except gocardless.GoCardlessError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    out.print("GoCardless secret id and key stored (encrypted)")


@banks_cli.command("gocardless-import")
def gocardless_import(
    countries: Annotated[
        list[str] | None,
        typer.Argument(help="ISO 3166 country codes; by default BANKHUB_GOCARDLESS_COUNTRIES"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
    fetch_logos: Annotated[bool, typer.Option("--logos/--no-logos", help=LOGOS_HELP)] = True,
) -> None:
    """Import the GoCardless institutions of the countries now (the background work does it
    daily): new banks are added disabled, known ones updated in place."""
    settings = settings_or_exit()
    codes = [c.strip().upper() for c in countries or settings.gocardless_country_codes]
    if not codes or not all(len(c) == 2 and c.isalpha() for c in codes):
        err.print("[red]name the countries (DE GB ...) or set BANKHUB_GOCARDLESS_COUNTRIES[/red]")
        raise typer.Exit(2)
    migrate(settings)
    reserved = _reserved_ids(settings)

    async def run() -> tuple[services.ImportOutcome, list[str]]:
        db = Database(settings.resolved_database_url())
        http = _outbound(settings)
        try:
            async with db.transaction() as session:
                keyring = await kr.open_keyring(settings, session)
                if not await gocardless.configured(session):
                    raise gocardless.GoCardlessError(
                        "GoCardless is not configured: set the secret id and key first "
                        "(bankhub banks gocardless-secret)"
                    )
            access = gocardless.GoCardless(db, keyring, http, utcnow, settings.gocardless_url)
            return await access.import_institutions(codes, reserved_ids=reserved)
        finally:
            await http.aclose()
            await db.dispose()

    try:
        outcome, skipped = asyncio.run(run())
    except gocardless.GoCardlessError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    except ConnectorFailure as exc:
        err.print(f"[red]GoCardless: {escape(exc.message)}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    fetched = _fetch_logos(settings) if fetch_logos else None
    if as_json:
        report: dict[str, Any] = {
            "countries": codes,
            "added": len(outcome.added),
            "updated": len(outcome.updated),
            "unchanged": outcome.unchanged,
            "skipped": skipped,
        }
        if fetched is not None:
            report["logos"] = fetched.as_dict()
        print(json.dumps(report))
        return
    for reason in skipped:
        out.print(f"skipped: {escape(reason)}", soft_wrap=True)
    out.print(
        f"GoCardless {', '.join(codes)}: {len(outcome.added)} banks added (disabled), "
        f"{len(outcome.updated)} updated, {outcome.unchanged} unchanged, {len(skipped)} skipped",
        soft_wrap=True,
    )
    if fetched is not None:
        _say_logos(fetched)
