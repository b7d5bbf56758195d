"""pytest fixtures for the throwaway PostgreSQL server.

* ``postgres_server`` (session): one ``PostgresServer`` for the whole run.
* ``postgres_url`` (function): a fresh, empty, uniquely named database; yields its
  ``postgresql+asyncpg://`` URL and drops it (with FORCE) afterwards.
* ``postgres_module_url`` (module): the same, shared by the tests of one module.
* ``postgres_template`` (session): the name of a database migrated to head once, to copy from.
* ``postgres_roles`` (function): a fresh database owned by a non-superuser owner role, and the
  name of a runtime role (created by ``bankhub.db.roles`` as the owner, after the migrations)
  that bankhub serves with under row-level security (S14).

Without PostgreSQL binaries the fixtures skip locally but fail when ``CI=true``.
Tests that use these fixtures get the ``postgres`` marker automatically, so
``-m "not postgres"`` deselects them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.postgres import PostgresRoles, PostgresServer, find_bindir

POSTGRES_FIXTURES = frozenset(
    {
        "postgres_server",
        "postgres_url",
        "postgres_module_url",
        "postgres_roles",
        "postgres_template",
    }
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin); "
            "install Debian's postgresql package"
        )
        if in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    server = PostgresServer(bindir=bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """The name of a database migrated to head once per session (per xdist worker), for
    ``CREATE DATABASE ... TEMPLATE`` copies (see ``migrated_database_url`` in tests/conftest.py).
    Nobody stays connected to it: PostgreSQL copies only an idle template."""
    from bankhub.db import migrate

    name = "bankhub_template"
    url = postgres_server.create_database(name)
    with ThreadPoolExecutor(1) as pool:  # Alembic runs an event loop of its own
        pool.submit(migrate.upgrade, url).result()
    return name


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(_db_name(url))


@pytest.fixture(scope="module")
def postgres_module_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(_db_name(url))


@pytest.fixture
def postgres_roles(postgres_server: PostgresServer) -> Iterator[PostgresRoles]:
    suffix = uuid.uuid4().hex[:12]
    database, owner, app = f"t_{suffix}", f"owner_{suffix}", f"app_{suffix}"
    # The owner may create the runtime role (CREATEROLE) but is no superuser: row-level
    # security binds it like anyone else (FORCE).
    postgres_server.run_sql(f"CREATE ROLE {owner} LOGIN NOSUPERUSER CREATEROLE")
    postgres_server.run_sql(f"CREATE DATABASE {database} OWNER {owner}")
    try:
        yield PostgresRoles(
            database=database,
            owner=owner,
            app=app,
            owner_url=postgres_server.url_for(database, owner),
            app_url=postgres_server.url_for(database, app),
            superuser_url=postgres_server.url_for(database),
        )
    finally:
        postgres_server.drop_database(database)
        postgres_server.run_sql(f"DROP ROLE IF EXISTS {app}")
        postgres_server.run_sql(f"DROP ROLE IF EXISTS {owner}")
