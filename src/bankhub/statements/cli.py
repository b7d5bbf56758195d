"""``bankhub import FILE``: parse a statement file, print what it holds, optionally import it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from sqlalchemy import select

from bankhub.config import Settings
from bankhub.connectors.statement.connector import StatementUnreadable, parse_upload
from bankhub.errors import DomainError, ErrorCode
from bankhub.hub import Hub
from bankhub.partners.models import App
from bankhub.statements import ParsedStatement
from bankhub.statements.importer import ImportOutcome, import_statement

CHUNK = 1024 * 1024


def read_file(path: Path, console: Console | None) -> bytes:
    """Read the file, with a progress bar on ``console`` (None: quietly)."""
    total = path.stat().st_size
    if console is None:
        return path.read_bytes()
    parts: list[bytes] = []
    columns = (TextColumn("reading {task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(path.name, total=total)
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                parts.append(chunk)
                progress.advance(task, len(chunk))
    return b"".join(parts)


def summary(parsed: ParsedStatement) -> dict[str, Any]:
    """What the file holds, per account: number or IBAN, currency, count, closing balance."""
    return {
        "format": parsed.format,
        "accounts": [
            {
                "account": a.iban or a.number or a.name,
                "currency": a.currency,
                "transactions": len(a.transactions),
                "closing_balance": format(a.closing_balance, "f")
                if a.closing_balance is not None
                else None,
                "closing_date": a.closing_date.isoformat() if a.closing_date else None,
            }
            for a in parsed.accounts
        ],
    }


def parse(data: bytes, filename: str, currency: str | None = None) -> ParsedStatement:
    """Parse or raise :class:`StatementUnreadable` with the parser's message; ``currency`` is
    the account's, for a format that states none (QIF)."""
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency.strip().upper()):
        raise StatementUnreadable(f"--currency {currency[:10]!r} is not an ISO 4217 code")
    return parse_upload(data, filename, currency.strip().upper() if currency else None)


def store(
    settings: Settings,
    client_id: str,
    customer_id: str,
    parsed: ParsedStatement,
    login_id: int | None = None,
    *,
    file_name: str | None = None,
) -> Any:
    """Import for the app's customer, exactly like ``POST /v2/statement``: into ``login_id``,
    else the customer's statement login holding the file's accounts, else a new login. The
    Bank Feed shows it as an import from the command line, with ``file_name``."""

    async def run() -> ImportOutcome:
        hub = Hub.build(settings)
        try:
            await hub.ready()
            async with hub.db.transaction(write=True) as session:
                query = select(App).where(App.client_id == client_id)
                app = (await session.execute(query)).scalar_one_or_none()
                if app is None:
                    raise DomainError(ErrorCode.BAD_REQUEST, f"No app with client id {client_id!r}")
                return await import_statement(
                    session,
                    hub.engine,
                    app,
                    customer_id,
                    parsed,
                    login_id,
                    source="cli",
                    file_name=file_name,
                )
        finally:
            await hub.close()

    return asyncio.run(run())
