"""``bankhub purge``: the operator runs one purge now and reads the counts."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from bankhub.accounts.changes import REMOVED, TransactionChange
from bankhub.accounts.models import Account, Transaction
from bankhub.audit.models import AuditEntry
from bankhub.cli import cli
from bankhub.clock import utcnow
from bankhub.config import Settings
from bankhub.customers.models import Customer
from bankhub.db.engine import Database
from bankhub.logins.models import Login
from bankhub.partners.models import App


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    return tmp_path


async def _app(session: AsyncSession, client_id: str) -> App:
    return (await session.execute(select(App).where(App.client_id == client_id))).scalar_one()


def _seed(client_id: str, stale: int, fresh: int) -> None:
    """One login with ``stale`` transactions fetched two days ago and ``fresh`` ones just now."""

    async def work() -> None:
        db = Database(Settings().resolved_database_url())
        now = utcnow()
        try:
            async with db.transaction() as session:
                app = await _app(session, client_id)
                customer = Customer(
                    id=str(uuid.uuid4()), app_id=app.id, identifier="c-1", created_at=now
                )
                session.add(customer)
                await session.flush()
                login = Login(
                    app_id=app.id,
                    customer_id=customer.id,
                    service_id=1,
                    secret_hash=uuid.uuid4().hex,
                    status="active",
                    connector_state={},
                    created_at=now,
                    updated_at=now,
                )
                session.add(login)
                await session.flush()
                account = Account(
                    app_id=app.id,
                    login_id=login.id,
                    bank_id="acc-1",
                    name="Current",
                    type="current",
                    currency="EUR",
                    balance=Decimal("10.00"),
                    created_at=now,
                    updated_at=now,
                )
                session.add(account)
                await session.flush()
                for i in range(stale + fresh):
                    fetched = now - timedelta(days=2) if i < stale else now
                    session.add(
                        Transaction(
                            app_id=app.id,
                            account_id=account.id,
                            dedupe_key=f"b:tx-{i}",
                            fingerprint=f"{i:064x}",
                            original_id=f"tx-{i}",
                            date=now.date(),
                            amount=Decimal("-1.50"),
                            currency="EUR",
                            description=f"coffee {i}",
                            category="food_and_drink",
                            status="booked",
                            fetched_at=fetched,
                            created_at=fetched,
                        )
                    )
        finally:
            await db.dispose()

    asyncio.run(work())


def _counts() -> tuple[int, int, int]:
    """Stored transactions, ``removed`` change-log rows, ``data.purged`` audit entries."""

    async def work() -> tuple[int, int, int]:
        db = Database(Settings().resolved_database_url())
        try:
            async with db.transaction() as session:
                stored = (await session.execute(select(func.count(Transaction.id)))).scalar_one()
                removed = (
                    await session.execute(
                        select(func.count(TransactionChange.id)).where(
                            TransactionChange.kind == REMOVED
                        )
                    )
                ).scalar_one()
                audited = (
                    await session.execute(
                        select(func.count(AuditEntry.id)).where(AuditEntry.action == "data.purged")
                    )
                ).scalar_one()
                return int(stored), int(removed), int(audited)
        finally:
            await db.dispose()

    return asyncio.run(work())


def test_purge_prints_the_counts(data_dir: Path) -> None:
    created = CliRunner().invoke(cli, ["apps", "create", "Budget app", "--json"])
    assert created.exit_code == 0, created.output
    client_id = json.loads(created.stdout)["client_id"]
    _seed(client_id, stale=3, fresh=2)

    result = CliRunner().invoke(cli, ["purge", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["transactions"] == 3
    assert report["changes"] == 0
    assert report["webhook_excerpts"] == 0
    assert report["failed"] == []
    [app] = report["apps"]
    assert (app["client_id"], app["transactions"], app["retention_hours"]) == (client_id, 3, 24)
    assert _counts() == (2, 3, 1)

    again = CliRunner().invoke(cli, ["purge"])
    assert again.exit_code == 0, again.output
    assert "purged 0 transactions, 0 change-log rows, 0 webhook excerpts" in again.stdout
    assert _counts() == (2, 3, 1)


def test_purge_in_words_names_each_app(data_dir: Path) -> None:
    created = CliRunner().invoke(cli, ["apps", "create", "Budget app", "--json"])
    client_id = json.loads(created.stdout)["client_id"]
    _seed(client_id, stale=4, fresh=0)
    result = CliRunner().invoke(cli, ["purge"])
    assert result.exit_code == 0, result.output
    assert "purged 4 transactions" in result.stdout
    assert f"{client_id}: 4 transactions" in result.stdout


def test_purge_also_purges_the_request_log_and_the_bank_feed(data_dir: Path) -> None:
    """What the runner's retention sweep purges besides the apps' data, `bankhub purge` purges
    too: API request log rows older than BANKHUB_REQUEST_LOG_DAYS and sync runs that finished
    more than BANKHUB_SYNC_RUN_DAYS ago; newer ones stay."""
    from bankhub.requestlog.models import ApiRequest
    from bankhub.sync.models import SyncRun

    created = CliRunner().invoke(cli, ["apps", "create", "Budget app", "--json"])
    client_id = json.loads(created.stdout)["client_id"]

    async def seed() -> None:
        db = Database(Settings().resolved_database_url())
        now = utcnow()
        try:
            async with db.transaction() as session:
                app = await _app(session, client_id)
                for days in (1, 13, 15, 30):
                    session.add(
                        ApiRequest(
                            app_id=app.id,
                            at=now - timedelta(days=days),
                            method="GET",
                            route="/v2/account",
                            status=200,
                            latency_us=900,
                            request_id=f"req-{days}",
                            via="key",
                        )
                    )
                for days in (1, 89, 91, 400):
                    at = now - timedelta(days=days)
                    session.add(
                        SyncRun(
                            app_id=app.id,
                            kind="api",
                            worker="request",
                            started_at=at,
                            finished_at=at,
                            outcome="refused",
                            file_name=f"statement-{days}.csv",
                        )
                    )
        finally:
            await db.dispose()

    async def left() -> tuple[list[str], list[str | None]]:
        db = Database(Settings().resolved_database_url())
        try:
            async with db.transaction() as session:
                requests = await session.execute(
                    select(ApiRequest.request_id).order_by(ApiRequest.id)
                )
                runs = await session.execute(select(SyncRun.file_name).order_by(SyncRun.id))
                return list(requests.scalars()), list(runs.scalars())
        finally:
            await db.dispose()

    asyncio.run(seed())
    result = CliRunner().invoke(cli, ["purge", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["request_log_rows"], report["sync_runs"]) == (2, 2)
    assert asyncio.run(left()) == (
        ["req-1", "req-13"],
        ["statement-1.csv", "statement-89.csv"],
    )
    words = CliRunner().invoke(cli, ["purge"])
    assert "purged 0 API request log rows, 0 sync runs" in words.stdout
