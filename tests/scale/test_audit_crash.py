"""Crash test of the S42 audit entry: ``bankhub serve`` SIGKILLed (the whole process group, the
HTTP worker with it) while clients read transactions as fast as they can.

Every answer a client received in full must have its ``account_data.read`` entry once the server
is started again: the entry is committed before the answer's first byte leaves (SQLite: the audit
writer's group commit, awaited; PostgreSQL: one INSERT in the read's own transaction). What a
crash may lose is the entry of an answer that never left, and nothing else.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bankhub.config import Environment, Settings
from bankhub.connectors.base import AccountRecord, AccountType, TransactionRecord
from bankhub.customers import services as customers
from bankhub.db import roles, tenancy
from bankhub.hub import Hub
from bankhub.logins import services as logins
from bankhub.partners import services as partners
from bankhub.sync.engine import FetchedAccount, FetchResult
from tests.conftest import upgrade_now
from tests.support.postgres import PostgresRoles
from tests.support.server_plugin import LiveServerFactory

SECRET_KEY = "audit-crash-pepper-" + "c" * 40
ROWS = 300
CLIENTS = 4
#: answers received before the kill (the kill then lands in the middle of more)
BEFORE_KILL = 60


async def _reader_login(settings: Settings, app_role: str | None) -> tuple[dict[str, str], str]:
    """An app and a login with ROWS transactions, stored by bankhub's own sync engine."""
    settings.make_data_dir()
    upgrade_now(settings.resolved_migration_url())
    if app_role is not None:  # as deployed: the runtime role under row-level security (S14)
        await roles.grant_app_role(settings.resolved_migration_url(), app_role)
    hub = Hub.build(settings)
    try:
        await hub.ready()
        records = [
            TransactionRecord(
                bank_id=f"crash-{n}",
                booking_date=date(2026, 1, 1) + timedelta(days=n % 300),
                amount=Decimal(-n - 1) / 100,
                currency="EUR",
                description=f"CARD PAYMENT {n}",
            )
            for n in range(ROWS)
        ]
        account = AccountRecord(
            bank_id="crash-account",
            name="Current",
            type=AccountType.CURRENT,
            currency="EUR",
            balance=Decimal("10.00"),
        )
        with tenancy.everything():
            async with hub.db.transaction() as session:
                issued = await partners.create_app(session, hub.hasher, hub.clock, "crash")
                customer = await customers.create_customer(session, hub.clock, issued.app, "crash")
                login, secret = logins.add_login(
                    session,
                    hub.hasher,
                    hub.clock(),
                    app_id=issued.app.id,
                    customer_id=customer.id,
                    service_id=1,
                )
                await session.flush()
                result = FetchResult([FetchedAccount(account, records)], None, {}, None)
                await hub.engine.apply(session, login, result)
        return issued.as_dict(), secret
    finally:
        await hub.close()


async def _audited_ids(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text("SELECT request_id FROM audit_log WHERE action = 'account_data.read'")
            )
            return {row[0] for row in found if row[0]}
    finally:
        await engine.dispose()


def _sqlite_audited_ids(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        found = connection.execute(
            "SELECT request_id FROM audit_log WHERE action = 'account_data.read'"
        )
        return {row[0] for row in found if row[0]}
    finally:
        connection.close()


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_every_answer_received_before_a_kill_has_its_audit_entry(
    live_server: LiveServerFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    database: str,
) -> None:
    data_dir = tmp_path / "data"
    env = {"BANKHUB_SECRET_KEY": SECRET_KEY, "BANKHUB_EMBEDDED_WORKER": "false"}
    app_role = None
    superuser_url = ""
    if database == "postgres":
        deployed: PostgresRoles = request.getfixturevalue("postgres_roles")
        env["BANKHUB_DATABASE_URL"] = deployed.app_url
        env["BANKHUB_MIGRATION_DATABASE_URL"] = deployed.owner_url
        app_role, superuser_url = deployed.app, deployed.superuser_url
    settings = Settings(
        env=Environment.TEST,
        data_dir=data_dir,
        secret_key=SECRET_KEY,
        database_url=env.get("BANKHUB_DATABASE_URL"),
        migration_database_url=env.get("BANKHUB_MIGRATION_DATABASE_URL"),
    )
    creds, secret = asyncio.run(_reader_login(settings, app_role))
    server = live_server(env, data_dir=data_dir)
    headers = {
        "client-id": creds["client_id"],
        "service-secret": creds["service_secret"],
        "login-secret": secret,
    }
    url = f"{server.url}/v2/transaction"
    received: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()
    stop = threading.Event()

    def reader() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                request_id = f"crash-{uuid.uuid4().hex}"
                try:
                    answer = client.get(
                        url,
                        params={"per_page": "100"},
                        headers={**headers, "X-Request-Id": request_id},
                    )
                except httpx.HTTPError:
                    if stop.is_set() or not _alive(server.proc.pid):
                        return
                    continue
                if answer.status_code != 200:
                    continue
                assert len(answer.json()["data"]) == 100  # the whole answer, parsed
                assert answer.headers["x-request-id"] == request_id
                with lock:
                    received.append(request_id)
                    if len(received) >= BEFORE_KILL:
                        enough.set()

    threads = [threading.Thread(target=reader) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        assert enough.wait(120), "the server answered too few reads before the kill"
        os.killpg(server.proc.pid, signal.SIGKILL)  # ``serve`` and its HTTP worker at once
        server.proc.wait(10)
        killed_at = time.monotonic()
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert time.monotonic() - killed_at < 30
    # started again on the same database (SQLite recovers its write-ahead log here)
    restarted = live_server(env, data_dir=data_dir)
    restarted.stop()
    if database == "postgres":
        audited = asyncio.run(_audited_ids(superuser_url))
    else:
        audited = _sqlite_audited_ids(data_dir / "bankhub.sqlite3")
    with lock:
        answered = set(received)
    assert len(answered) >= BEFORE_KILL
    lost = answered - audited
    assert not lost, f"{len(lost)} of {len(answered)} answers received have no audit entry"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
