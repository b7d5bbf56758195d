from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # ships no type hints

from tests.support.postgres import PostgresServer


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_server_answers_select_1(postgres_server: PostgresServer) -> None:
    conn = await asyncpg.connect(postgres_server.dsn)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "bankhub_test"
        assert await conn.fetchval("show fsync") == "off"
        version = await conn.fetchval("show server_version_num")
        assert int(version) >= 150000
    finally:
        await conn.close()


def test_server_layout(postgres_server: PostgresServer) -> None:
    assert postgres_server.url.startswith("postgresql+asyncpg://bankhub@127.0.0.1:")
    datadir = postgres_server.datadir
    mode = stat.S_IMODE(datadir.stat().st_mode)
    assert mode == 0o700
    if os.geteuid() == 0:
        assert datadir.stat().st_uid != 0, "the server must not run as root"
    assert Path(postgres_server.socket_dir).is_relative_to(postgres_server.tmpdir or Path("/"))


async def _tables(url: str) -> list[str]:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "select table_name from information_schema.tables where table_schema = 'public'"
        )
        await conn.execute("create table marker (id int)")
        return [r["table_name"] for r in rows]
    finally:
        await conn.close()


async def test_postgres_url_gives_fresh_database(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    other = postgres_server.create_database()
    try:
        assert other != postgres_url
        assert postgres_url.startswith("postgresql+asyncpg://")
        # Both empty, and a table made in one does not show up in the other.
        assert await _tables(postgres_url) == []
        assert await _tables(other) == []
    finally:
        postgres_server.drop_database(other.rsplit("/", 1)[1])


async def test_drop_database_disconnects_clients(postgres_server: PostgresServer) -> None:
    # A test that forgets to dispose its engine must not make the teardown hang or fail.
    url = postgres_server.create_database()
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        postgres_server.drop_database(url.rsplit("/", 1)[1])
        conn2 = None
        with contextlib.suppress(asyncpg.InvalidCatalogNameError):
            conn2 = await asyncpg.connect(_asyncpg_dsn(url))
        assert conn2 is None, "database still exists"
    finally:
        await conn.close(timeout=2)


def test_standalone_start_stop() -> None:
    server = PostgresServer(database="other_db")
    with server:
        assert server.url.endswith("/other_db")
        tmpdir = server.tmpdir
        assert tmpdir is not None
        assert server.startup_seconds is not None
    assert not tmpdir.exists()
    server.stop()  # idempotent
