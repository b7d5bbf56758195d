"""``bankhub audit``: the operator reads the audit log, newest first, filtered."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import select

from bankhub.audit import services as audit
from bankhub.cli_common import err, migrate, out, settings_or_exit
from bankhub.db.engine import Database
from bankhub.partners.models import App

MAX_LIMIT = 10_000


def _since(value: str | None) -> datetime | None:
    """An ISO date or date-time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        err.print(f"[red]--since: {value!r} is not an ISO date or date-time[/red]")
        raise typer.Exit(2) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def audit_log(
    app: Annotated[str | None, typer.Option("--app", help="only entries of this client-id")] = None,
    action: Annotated[
        list[str] | None, typer.Option("--action", help="only this action (repeatable)")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="from this ISO date or time on (UTC if no zone)")
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="only entries of this request")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Read the audit log (S42), newest first: authentication events, reads of account data,
    changes of keys, settings and data."""
    settings = settings_or_exit()
    start = _since(since)
    migrate(settings)

    async def read() -> list[dict[str, Any]] | None:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                app_id = None
                if app is not None:
                    app_id = (
                        await session.execute(select(App.id).where(App.client_id == app))
                    ).scalar_one_or_none()
                    if app_id is None:
                        return None
                entries = await audit.search(
                    session,
                    app_id=app_id,
                    actions=action or (),
                    since=start,
                    request_id=request_id,
                    limit=limit,
                )
                return [audit.as_dict(entry) for entry in entries]
        finally:
            await db.dispose()

    rows = asyncio.run(read())
    if rows is None:
        err.print(f"[red]no app with client-id {app!r}[/red]", highlight=False)
        raise typer.Exit(2)
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        target = row["target_type"]
        if row["target_id"]:
            target += f":{row['target_id']}"
        out.print(
            f"{row['at']}  {row['action']}  {row['actor']}  {target}  "
            f"request={row['request_id'] or '-'}  {json.dumps(row['detail'], sort_keys=True)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if not rows:
        out.print("no audit entries match", highlight=False)
