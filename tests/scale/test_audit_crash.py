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

from bankhub.connectors.base import TransactionRecord
from tests.support.served_login import served_login
from tests.support.server_plugin import LiveServerFactory

SECRET_KEY = "audit-crash-pepper-" + "c" * 40
ROWS = 300
CLIENTS = 4
#: answers received before the kill (the kill then lands in the middle of more)
BEFORE_KILL = 60


def _records() -> list[TransactionRecord]:
    return [
        TransactionRecord(
            bank_id=f"crash-{n}",
            booking_date=date(2026, 1, 1) + timedelta(days=n % 300),
            amount=Decimal(-n - 1) / 100,
            currency="EUR",
            description=f"CARD PAYMENT {n}",
        )
        for n in range(ROWS)
    ]


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
    served = served_login(
        live_server,
        request,
        data_dir,
        database,
        secret_key=SECRET_KEY,
        name="crash",
        records=_records(),
    )
    server, headers = served.server, served.headers
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
    restarted = live_server(served.env, data_dir=data_dir)
    restarted.stop()
    if database == "postgres":
        audited = asyncio.run(_audited_ids(served.superuser_url))
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
