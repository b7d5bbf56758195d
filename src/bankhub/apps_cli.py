"""``bankhub apps list | archive | restore | rename``: the operator's view of the partner apps,
the same services and audit entries as the dashboard's (``bankhub apps create`` and
``allow-ip`` are in ``bankhub.cli``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.cli_common import in_one_transaction, migrate, out, settings_or_exit
from bankhub.clock import utcnow
from bankhub.errors import ErrorCode, NotFound
from bankhub.partners import services as partners
from bankhub.partners.models import App

T = TypeVar("T")
#: the actor of the audit entries, as the other operator commands write it
OPERATOR = "operator"


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    settings = settings_or_exit()
    migrate(settings)
    # S14: the command's callback (``bankhub.cli``) chose every app's rows
    return in_one_transaction(settings, work, highlight=False)


async def _app(session: AsyncSession, client_id: str) -> App:
    found = (
        await session.execute(select(App).where(App.client_id == client_id[:64]))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(ErrorCode.CLIENT_NOT_FOUND, f"no app with client-id {client_id}")
    return found


def _row(app: App) -> dict[str, Any]:
    return {
        "client_id": app.client_id,
        "name": app.name,
        "mode": app.mode,
        "created_at": app.created_at.isoformat(),
        "archived": app.archived_at is not None,
        "archived_at": app.archived_at.isoformat() if app.archived_at else None,
        "archived_by": app.archived_by,
    }


def apps_list(
    archived: Annotated[bool, typer.Option("--archived", help="only archived apps")] = False,
    every: Annotated[bool, typer.Option("--all", help="live and archived apps")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """The apps (live ones unless --archived or --all), each with its state."""
    wanted = None if every else archived

    async def read(session: AsyncSession) -> list[dict[str, Any]]:
        return [_row(app) for app in await partners.list_apps(session, archived=wanted)]

    rows = _run(read)
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        state = f"archived {row['archived_at'][:16]}Z" if row["archived"] else "live"
        out.print(f"{row['client_id']}\t{state}\t{row['mode']}\t{row['name']}", highlight=False)
    if not rows:
        out.print("no archived apps" if archived and not every else "no apps", highlight=False)


def apps_archive(
    client_id: Annotated[str, typer.Argument(help="the app's client-id")],
) -> None:
    """Archive an app: its keys and tokens are refused (AppArchived) until it is restored.
    Nothing is deleted. Audited."""

    async def archive(session: AsyncSession) -> bool:
        app = await _app(session, client_id)
        return await partners.archive_app(session, app, now=utcnow(), actor=OPERATOR)

    changed = _run(archive)
    out.print(
        f"{client_id}: archived" + ("" if changed else " already"),
        highlight=False,
    )


def apps_restore(
    client_id: Annotated[str, typer.Argument(help="the app's client-id")],
) -> None:
    """Restore an archived app: its live keys work again. Audited."""

    async def restore(session: AsyncSession) -> bool:
        app = await _app(session, client_id)
        return await partners.restore_app(session, app, now=utcnow(), actor=OPERATOR)

    changed = _run(restore)
    out.print(f"{client_id}: " + ("restored" if changed else "not archived"), highlight=False)


def apps_rename(
    client_id: Annotated[str, typer.Argument(help="the app's client-id")],
    name: Annotated[str, typer.Argument(help="its new name (1 to 200 characters)")],
) -> None:
    """Give an app a new name (its client-id stays). Audited."""

    async def rename(session: AsyncSession) -> str:
        app = await _app(session, client_id)
        await partners.rename_app(session, app, name, now=utcnow(), actor=OPERATOR)
        return app.name

    out.print(f"{client_id}: renamed to {_run(rename)}", highlight=False)
