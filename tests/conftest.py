"""Shared fixtures: every API test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bankhub.app import create_app, freeze_start_up
from bankhub.config import Environment, Settings
from bankhub.db import migrate, roles, tenancy
from bankhub.hub import Hub
from bankhub.partners import services as partners
from tests.support.asgi import asgi_transport
from tests.support.postgres import PostgresRoles, PostgresServer

pytest_plugins = [
    "tests.support.pg_plugin",
    "tests.support.redis_plugin",
    "tests.support.browser_plugin",
    "tests.support.server_plugin",
    "tests.support.peer_plugin",
]

BASE_URL = "http://testserver.local"


class FakeClock:
    """An injected clock: tests move time instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection built (every module, the ORM's metadata), as ``serve`` does at
    start-up: otherwise each full garbage collection walks it all again, and the test apps'
    garbage sets one off every few tests (a fifth of a harness test's time, measured)."""
    freeze_start_up()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'bankhub.sqlite3'}"
    elif "migrated_database_url" in request.fixturenames:
        # Wanted at head: a copy of the migrated template straight away. An empty database
        # first, only to be replaced, cost a CREATE DATABASE (~0.3 s of the server's CPU) in
        # every PostgreSQL test.
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(template=request.getfixturevalue("postgres_template"))
        _AT_HEAD.add(url)
        try:
            yield url
        finally:
            _AT_HEAD.discard(url)
            server.drop_database(url.rsplit("/", 1)[1])
    else:
        yield request.getfixturevalue("postgres_url")


#: PostgreSQL databases ``database_url`` made as copies of the migrated template
_AT_HEAD: set[str] = set()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per session (per xdist worker); see
    ``migrated_database_url``."""
    path = tmp_path_factory.mktemp("sqlite-template") / "bankhub.sqlite3"
    upgrade_now(f"sqlite+aiosqlite:///{path}")
    # Fold the write-ahead log into the file, so copying the file copies everything.
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def migrated_database_url(request: pytest.FixtureRequest, database_url: str) -> str:
    """``database_url``'s database, at the head revision: a copy of a template migrated once
    per session, which is much cheaper than running every migration again for each test.
    The migrations themselves are proven on empty databases by tests/test_migrations.py."""
    if database_url.startswith("sqlite"):
        target = Path(database_url.split(":///", 1)[1])
        assert not target.exists(), f"{target} is not the fresh database it should be"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return database_url
    if database_url in _AT_HEAD:
        return database_url
    # a module's own ``database_url`` (an empty database): replaced by a copy of the template
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    return server.replace_database(database_url.rsplit("/", 1)[1], template)


def upgrade_now(url: str) -> None:
    """Migrate ``url`` to head from synchronous code that may sit under a test's event loop
    (Alembic runs a loop of its own, so it gets a thread of its own)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(migrate.upgrade, url).result()


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": Environment.TEST,
        "data_dir": tmp_path,
        "database_url": database_url,
        # random, so that production settings (which refuse a guessable key) take it too
        "secret_key": "Gq7tWm2Zr9vXc4Lp8Hs1Yd6Kf3Nb5Jw0Ue",
        "public_url": BASE_URL,
        "connector_timeout_seconds": 5.0,
        "sandbox_slow_seconds": 30.0,
        "sandbox_decoupled_delay_seconds": 3.0,
    }
    values.update(overrides)
    return Settings(**values)


class Harness:
    """An app under test with one partner app's credentials."""

    def __init__(self, hub: Hub, client: httpx.AsyncClient, creds: dict[str, str]) -> None:
        self.hub = hub
        self.client = client
        self.creds = creds

    @property
    def clock(self) -> FakeClock:
        clock = self.hub.clock
        assert isinstance(clock, FakeClock)
        return clock

    def headers(self, *, login_secret: str | None = None, mobile: bool = False) -> dict[str, str]:
        headers = {"client-id": self.creds["client_id"], "content-type": "application/json"}
        if mobile:
            headers["app-secret"] = self.creds["app_secret"]
        else:
            headers["service-secret"] = self.creds["service_secret"]
        if login_secret is not None:
            headers["login-secret"] = login_secret
        return headers

    async def new_app(self, name: str = "second") -> dict[str, str]:
        with tenancy.everything():  # the operator's act (S14)
            async with self.hub.db.transaction() as session:
                issued = await partners.create_app(session, self.hub.hasher, self.hub.clock, name)
        return issued.as_dict()


@pytest.fixture
async def harness(
    tmp_path: Path, migrated_database_url: str, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    overrides = getattr(request, "param", None) or {}
    settings = make_settings(tmp_path, migrated_database_url, **overrides)
    async for running in run_harness(settings, clock, migrated=True):
        yield running


@pytest.fixture
async def app_role_harness(
    tmp_path: Path,
    postgres_roles: PostgresRoles,
    clock: FakeClock,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Harness]:
    """The harness on PostgreSQL as deployed (S14): migrations as the tables' owner, bankhub
    itself as a runtime role that owns nothing and is bound by row-level security. Settings
    overrides come as the fixture's parameter, as with ``harness``."""
    overrides = getattr(request, "param", None) or {}
    settings = make_settings(
        tmp_path,
        postgres_roles.app_url,
        migration_database_url=postgres_roles.owner_url,
        **overrides,
    )
    async for running in run_harness(settings, clock, app_role=postgres_roles.app):
        yield running


async def run_harness(
    settings: Settings,
    clock: FakeClock,
    *,
    app_role: str | None = None,
    migrated: bool = False,
) -> AsyncIterator[Harness]:
    """Migrate (as the owner) unless the database is ``migrated`` already, grant the runtime
    role if one is named, start the hub, create the first app, and serve the application to an
    in-process client."""
    if not migrated:
        await asyncio.to_thread(migrate.upgrade, settings.resolved_migration_url())
    if app_role is not None:
        await roles.grant_app_role(settings.resolved_migration_url(), app_role)
    hub = Hub.build(settings, clock=clock)
    await hub.ready()
    with tenancy.everything():
        async with hub.db.transaction() as session:
            issued = await partners.create_app(session, hub.hasher, clock, "Test app")
    app = create_app(hub)
    # The app runs on the test's own event loop, so database connections never cross loops.
    transport = asgi_transport(app)
    try:
        # a browser's language, as every browser sends one (the sandbox banks' countries
        # would otherwise choose the connect page's language: tests/unit/test_i18n.py)
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers={"Accept-Language": "en"}
        ) as client:
            yield Harness(hub, client, issued.as_dict())
    finally:
        await hub.close()
