"""The same-stack baseline of ``bench/read.py``: bankhub's stack without bankhub's own work.

Kept beside the bare-driver baselines (``read_bare.py``): the gap between it and bankhub is
bankhub's duties and route code, the gap between it and the bare driver what the stack costs.

The same framework (Litestar, msgspec), the same server started the same way as ``bankhub
serve`` (granian, ASGI, one worker, no access log), the same database through the same driver
and engine settings (``bankhub.db.engine.make_engine``: pool, SQLite pragmas), the same SQL as
``bankhub.accounts.services.transactions_of`` for one account (``app_id = ? AND account_id IN
(?) ORDER BY date DESC, id DESC LIMIT ? OFFSET ?``) with the same column types, and the same
JSON (``{"data": [...], "version": "v2"}``, amounts formatted by ``bankhub.money``); and
``GET /v2/account?login_id=N``, the login's accounts.

What it leaves out is what the benchmark measures: no authentication (no app or login lookup,
no keyed hashes), no tenant scoping of the account, no ORM unit of work (Core rows), no
maintenance check or other request hooks.

    READ_BASELINE_DATABASE_URL=sqlite+aiosqlite:///... READ_BASELINE_APP_ID=1 \
        python -m bench.read_baseline --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, get
from sqlalchemy import Table, select

from bankhub.accounts.models import Account, Transaction
from bankhub.db.engine import make_engine
from bankhub.money import format_amount

URL_VARIABLE = "READ_BASELINE_DATABASE_URL"
APP_ID_VARIABLE = "READ_BASELINE_APP_ID"


class TransactionOut(msgspec.Struct):
    id: int
    original_id: str
    date: str
    amount: str
    currency: str
    description: str
    category: str
    meta: dict[str, Any] | None


class TransactionListEnvelope(msgspec.Struct):
    data: list[TransactionOut]
    version: str = "v2"


class AccountOut(msgspec.Struct):
    id: int
    original_id: str
    login_id: int
    name: str
    balance: str | None
    currency: str
    type: str


class AccountListEnvelope(msgspec.Struct):
    data: list[AccountOut]
    version: str = "v2"


def create_app() -> Litestar:
    """The granian target (a factory): settings from the environment."""
    engine = make_engine(os.environ[URL_VARIABLE])
    app_id = int(os.environ.get(APP_ID_VARIABLE, "1"))
    table: Table = Transaction.__table__  # type: ignore[assignment]
    c = table.c

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/v2/transaction")
    async def list_transactions(
        account_id: str, per_page: str = "1000", page: str = "1"
    ) -> TransactionListEnvelope:
        limit = int(per_page)
        query = (
            select(table)
            .where(c.app_id == app_id, c.account_id.in_([int(account_id)]))
            .order_by(c.date.desc(), c.id.desc())
            .offset((int(page) - 1) * limit)
            .limit(limit + 1)
        )
        async with engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return TransactionListEnvelope(
            [
                TransactionOut(
                    id=row.id,
                    original_id=row.original_id,
                    date=row.date.isoformat(),
                    amount=format_amount(row.amount, row.currency),
                    currency=row.currency,
                    description=row.description,
                    category=row.category,
                    meta=row.meta,
                )
                for row in rows[:limit]
            ]
        )

    accounts_table: Table = Account.__table__  # type: ignore[assignment]
    a = accounts_table.c

    @get("/v2/account")
    async def list_accounts(login_id: str) -> AccountListEnvelope:
        query = (
            select(accounts_table)
            .where(a.app_id == app_id, a.login_id == int(login_id))
            .order_by(a.id)
        )
        async with engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return AccountListEnvelope(
            [
                AccountOut(
                    id=row.id,
                    original_id=row.bank_id,
                    login_id=row.login_id,
                    name=row.name,
                    balance=None
                    if row.balance is None
                    else format_amount(row.balance, row.currency),
                    currency=row.currency,
                    type=row.type,
                )
                for row in rows
            ]
        )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    return Litestar(
        route_handlers=[healthz, list_transactions, list_accounts], lifespan=[lifespan], debug=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read_baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    from granian import Granian
    from granian.constants import Interfaces

    # Exactly as ``bankhub serve`` starts bankhub (src/bankhub/cli.py).
    Granian(
        "bench.read_baseline:create_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=1,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
