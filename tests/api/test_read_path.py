"""The read path on SQLite: ``GET /v2/account`` and ``GET /v2/transaction`` read the key, the
login, the accounts and the page on the event loop's thread (``Database.read``), with no hand-off
to aiosqlite's worker thread; the audit entry still goes through the writer."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bankhub.audit import services as audit
from tests.conftest import Harness
from tests.security.test_audit import entries, holdings


def _trace(h: Harness) -> list[tuple[int, str]]:
    """(thread, statement) of everything SQLite runs from now on, on either of the hub's engines
    (their pools are emptied so that every connection is a traced one)."""
    seen: list[tuple[int, str]] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        raw = dbapi_connection._connection._conn  # the sqlite3 connection under the adapter
        raw.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))

    for engine in (h.hub.db.engine, h.hub.db.read_engine):
        assert engine is not None
        event.listen(engine.sync_engine, "connect", trace)
    return seen


@pytest.mark.parametrize("path", ["/v2/account", "/v2/transaction"])
async def test_reads_of_the_api_run_on_the_event_loop(harness: Harness, path: str) -> None:
    h = harness
    if h.hub.db.dialect != "sqlite":
        pytest.skip("PostgreSQL reads through asyncpg, which has no thread to hand off to")
    held = await holdings(h)
    await h.hub.db.engine.dispose()
    seen = _trace(h)
    response = await h.client.get(
        path,
        params={"account_id": held.account_id} if path == "/v2/transaction" else {},
        headers={**h.headers(login_secret=held.secret), "X-Request-Id": "traced"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]
    loop = threading.get_ident()
    reads = [
        (thread, sql)
        for thread, sql in seen
        if sql.lstrip().upper().startswith("SELECT")
        and any(f"FROM {table}" in sql for table in ("api_keys", "logins", "accounts"))
    ]
    assert reads, seen
    assert [sql for thread, sql in reads if thread != loop] == []
    if path == "/v2/transaction":
        assert any("FROM transactions" in sql and thread == loop for thread, sql in seen)
    # the S42 entry is stored as before, by the writer
    assert len(await entries(h, request_id="traced", action=audit.READ)) == 1


async def test_a_read_whose_pooled_connection_died_is_answered_on_a_fresh_one(
    harness: Harness,
) -> None:
    """test_a_read_whose_pooled_connection_died_is_answered_on_a_fresh_one — PostgreSQL: the
    read pool checks no connection before use (no pre-ping round trip); every server process
    of the database killed (a restart, an idle timeout), the next read fails its first
    statement, and its authentication runs again on a new connection: the answer is the
    same."""
    h = harness
    if h.hub.db.dialect != "postgresql":
        pytest.skip("SQLite has no server to lose")
    held = await holdings(h)

    async def read() -> httpx.Response:
        return await h.client.get(
            "/v2/transaction",
            params={"account_id": held.account_id},
            headers=h.headers(login_secret=held.secret),
        )

    first = await read()
    assert first.status_code == 200, first.text
    engine = create_async_engine(h.hub.settings.resolved_database_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            killed = (
                await connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
        assert killed >= 1
    finally:
        await engine.dispose()
    again = await read()
    assert again.status_code == 200, again.text
    assert again.content == first.content
