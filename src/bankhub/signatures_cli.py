"""``bankhub signatures``: the public keys an app's API requests are signed with, and the URLs
they are synced from (``bankhub signatures source``)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.cli_common import err, in_one_transaction, migrate, out, settings_or_exit
from bankhub.clock import utcnow
from bankhub.config import Settings
from bankhub.db.engine import Database
from bankhub.errors import DomainError
from bankhub.partners.models import App
from bankhub.security import tls
from bankhub.signatures import services, sync
from bankhub.signatures.fetch import KeyFetcher
from bankhub.signatures.models import SignatureKey

T = TypeVar("T")
signatures_cli = typer.Typer(
    no_args_is_help=True, help="Public keys that sign an app's API requests (RFC 9421)."
)
OPERATOR = "operator:cli"
AppOption = Annotated[str, typer.Option("--app", help="the app's client-id")]
JsonOption = Annotated[bool, typer.Option("--json")]


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    settings = settings_or_exit()
    migrate(settings)
    return in_one_transaction(settings, work, describe=_with_problems)


def _with_problems(exc: DomainError) -> str:
    problems = exc.extra.get("problems")
    return exc.message + (f" ({', '.join(problems)})" if problems else "")


async def _app_id(session: AsyncSession, client_id: str) -> int:
    app_id = await session.scalar(select(App.id).where(App.client_id == client_id))
    if app_id is None:
        err.print(f"[red]no app with client-id {client_id!r}[/red]")
        raise typer.Exit(2)
    return app_id


def _row(key: SignatureKey) -> dict[str, Any]:
    return {
        "id": key.public_id,
        "keyid": key.keyid,
        "label": key.label,
        "algorithm": key.algorithm,
        "fingerprint": key.fingerprint,
        "required": key.required,
        "source": key.source,
        "created_at": key.created_at.isoformat(),
        "created_by": key.created_by,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "revoked_by": key.revoked_by,
    }


def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        out.print("  ".join(f"{k}={v}" for k, v in row.items() if v is not None), highlight=False)


@signatures_cli.command("list")
def list_(app: AppOption, as_json: JsonOption = False) -> None:
    """An app's signature keys, revoked ones included."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [_row(k) for k in await services.list_keys(session, await _app_id(session, app))]

    _print(_run(work), as_json)


@signatures_cli.command("add")
def add(
    app: AppOption,
    key_file: Annotated[
        str,
        typer.Argument(
            help="a PEM public key, an OpenSSH public-key line or a JWK; - reads standard input"
        ),
    ],
    label: Annotated[str | None, typer.Option(help="the partner's name for the key")] = None,
    algorithm: Annotated[
        str | None, typer.Option(help="RSA only: rsa-pss-sha512 (default) or rsa-v1_5-sha256")
    ] = None,
    required: Annotated[
        bool, typer.Option("--required", help="refuse the app's unsigned requests")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Register a public key for an app."""
    text = sys.stdin.read() if key_file == "-" else Path(key_file).read_text(encoding="utf-8")

    async def work(session: AsyncSession) -> dict[str, Any]:
        key = await services.add_key(
            session,
            await _app_id(session, app),
            public_key=text,
            label=label,
            algorithm=algorithm,
            required=required,
            now=utcnow(),
            actor=OPERATOR,
        )
        return _row(key)

    _print([_run(work)], as_json)


@signatures_cli.command("revoke")
def revoke(
    app: AppOption,
    key_id: Annotated[str, typer.Argument(help="the key's id (sk_…)")],
    as_json: JsonOption = False,
) -> None:
    """Revoke an app's signature key at once."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        key = await services.revoke_key(
            session, await _app_id(session, app), key_id, now=utcnow(), actor=OPERATOR
        )
        return _row(key)

    _print([_run(work)], as_json)


# --- key sources --------------------------------------------------------------------------------

sources_cli = typer.Typer(
    no_args_is_help=True,
    help="URLs an app's signature keys are synced from (OpenSSH lines or a JWKS).",
)
signatures_cli.add_typer(sources_cli, name="source")


def _with_fetcher(
    work: Callable[[Database, KeyFetcher, Settings], Awaitable[T]],
) -> T:
    """Run ``work`` with a database and the fetcher the runner uses (the same SSRF guard)."""
    settings = settings_or_exit()
    migrate(settings)

    async def go() -> T:
        db = Database(settings.resolved_database_url())
        http = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            verify=tls.outbound_ssl_context(settings.ca_bundle),
        )
        try:
            return await work(db, sync.fetcher_for(settings, http), settings)
        finally:
            await http.aclose()
            await db.dispose()

    try:
        return asyncio.run(go())
    except DomainError as exc:
        problems = exc.extra.get("problems")
        err.print(f"[red]{exc.message}[/red]" + (f" ({', '.join(problems)})" if problems else ""))
        raise typer.Exit(2) from None


async def _source_rows(
    db: Database, app: str, settings: Settings, only: str | None = None
) -> list[dict[str, Any]]:
    grace = settings.signature_sync_grace
    async with db.transaction() as session:
        app_id = await _app_id(session, app)
        counts = await sync.key_counts(session, app_id)
        return [
            {
                "id": s.public_id,
                "url": s.url,
                "required": s.required,
                "state": sync.state(s),
                "keys": counts.get(s.public_id, 0),
                "last_good_at": s.last_good_at.isoformat() if s.last_good_at else None,
                "last_attempt_at": s.last_attempt_at.isoformat() if s.last_attempt_at else None,
                "last_error": s.last_error,
                "grace_until": (g.isoformat() if (g := sync.grace_until(s, grace)) else None),
                "skipped": list(s.skipped or []) or None,
            }
            for s in await sync.list_sources(session, app_id)
            if only is None or s.public_id == only
        ]


@sources_cli.command("list")
def source_list(app: AppOption, as_json: JsonOption = False) -> None:
    """An app's key sources and the state of each."""

    async def work(db: Database, _fetcher: KeyFetcher, settings: Settings) -> list[dict[str, Any]]:
        return await _source_rows(db, app, settings)

    _print(_with_fetcher(work), as_json)


@sources_cli.command("add")
def source_add(
    app: AppOption,
    url: Annotated[str, typer.Argument(help="e.g. https://github.com/USER.keys, or a JWKS URL")],
    required: Annotated[
        bool, typer.Option("--required", help="its keys refuse the app's unsigned requests")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Sync an app's keys from a URL; it is fetched at once."""

    async def work(db: Database, fetcher: KeyFetcher, settings: Settings) -> list[dict[str, Any]]:
        async with db.transaction() as session:
            source = await sync.add_source(
                session,
                await _app_id(session, app),
                url=url,
                required=required,
                fetcher=fetcher,
                now=utcnow(),
                actor=OPERATOR,
            )
            row_id, public_id = source.id, source.public_id
        await sync.sync_source(db, utcnow, fetcher, row_id, grace=settings.signature_sync_grace)
        return await _source_rows(db, app, settings, public_id)

    _print(_with_fetcher(work), as_json)


@sources_cli.command("sync")
def source_sync(
    app: AppOption,
    source_id: Annotated[str, typer.Argument(help="the source's id (ks_…)")],
    as_json: JsonOption = False,
) -> None:
    """Fetch a key source now and apply what it lists."""

    async def work(db: Database, fetcher: KeyFetcher, settings: Settings) -> list[dict[str, Any]]:
        async with db.transaction() as session:
            row_id = (await sync.get_source(session, await _app_id(session, app), source_id)).id
        await sync.sync_source(db, utcnow, fetcher, row_id, grace=settings.signature_sync_grace)
        return await _source_rows(db, app, settings, source_id)

    rows = _with_fetcher(work)
    _print(rows, as_json)
    if rows and rows[0]["state"] != sync.OK:
        raise typer.Exit(1)


@sources_cli.command("remove")
def source_remove(
    app: AppOption,
    source_id: Annotated[str, typer.Argument(help="the source's id (ks_…)")],
    as_json: JsonOption = False,
) -> None:
    """Stop syncing from a URL; the keys it brought are revoked at once."""

    async def work(db: Database, _fetcher: KeyFetcher, _settings: Settings) -> dict[str, Any]:
        async with db.transaction() as session:
            source = await sync.remove_source(
                session, await _app_id(session, app), source_id, now=utcnow(), actor=OPERATOR
            )
            return {"id": source.public_id, "url": source.url, "removed": True}

    _print([_with_fetcher(work)], as_json)
