"""The PostgreSQL runtime role: rights on the tables, never their ownership (S14).

The tables belong to the role that runs the migrations (``BANKHUB_MIGRATION_DATABASE_URL``).
bankhub serves with another role (``BANKHUB_DATABASE_URL``) that may read and write rows but not
change the schema, switch row-level security off, or bypass it. :func:`grant_app_role`, run as
the owner, creates that role when the owner may create roles and grants it what it needs, now
and for the tables later migrations add (default privileges).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_ROLE = "bankhub_app"


class RoleError(RuntimeError):
    """The role cannot be made safe; the message says what to do."""


@dataclass(frozen=True, slots=True)
class RoleReport:
    role: str
    owner: str
    created: bool
    tables: int


async def _statement(connection: AsyncConnection, template: str, *args: str) -> str:
    """A DDL statement with identifiers and literals quoted by the server (``format``)."""
    placeholders = ", ".join(f"cast(:a{i} as text)" for i in range(len(args)))
    query = text(f"select format(cast(:template as text), {placeholders})")
    params = {"template": template, **{f"a{i}": a for i, a in enumerate(args)}}
    statement: str = (await connection.execute(query, params)).scalar_one()
    return statement


async def _run(connection: AsyncConnection, template: str, *args: str) -> None:
    await connection.exec_driver_sql(await _statement(connection, template, *args))


async def grant_on(connection: AsyncConnection, role: str, password: str | None) -> RoleReport:
    """Create ``role`` if it is missing, grant it row access to every table of the schema, and
    check it neither owns a table nor bypasses row-level security."""
    if not ROLE_NAME.match(role):
        raise RoleError(f"{role!r} is not a plain role name ([a-z0-9_], at most 63 characters)")
    owner, schema, database = (
        await connection.execute(text("select current_user, current_schema(), current_database()"))
    ).one()
    if role == owner:
        raise RoleError(
            f"{role} owns the tables; the runtime role must be another one "
            "(BANKHUB_MIGRATION_DATABASE_URL names the owner)"
        )
    found = (
        await connection.execute(
            text("select rolsuper, rolbypassrls from pg_roles where rolname = :role"),
            {"role": role},
        )
    ).one_or_none()
    created = found is None
    if found is None:
        may_create = (
            await connection.execute(
                text("select rolcreaterole or rolsuper from pg_roles where rolname = current_user")
            )
        ).scalar_one()
        if not may_create:
            raise RoleError(
                f"role {role} does not exist and {owner} may not create roles: create it as a "
                f"database administrator (CREATE ROLE {role} LOGIN PASSWORD '...'), then run "
                "this command again"
            )
        template = "CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
        if password:
            await _run(connection, template + " PASSWORD %L", role, password)
        else:
            await _run(connection, template, role)
    elif found[0] or found[1]:
        raise RoleError(
            f"role {role} is a superuser or has BYPASSRLS: row-level security would not bind it"
        )
    await _run(connection, "GRANT CONNECT ON DATABASE %I TO %I", database, role)
    await _run(connection, "GRANT USAGE ON SCHEMA %I TO %I", schema, role)
    rows = "SELECT, INSERT, UPDATE, DELETE"
    await _run(connection, f"GRANT {rows} ON ALL TABLES IN SCHEMA %I TO %I", schema, role)
    await _run(connection, "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I", schema, role)
    # Tables and sequences the owner creates later (new migrations) get the same rights.
    await _run(
        connection,
        f"ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT {rows} ON TABLES TO %I",
        owner,
        schema,
        role,
    )
    await _run(
        connection,
        "ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO %I",
        owner,
        schema,
        role,
    )
    # The schema's version is the migrations' business: the runtime role only reads it.
    exists = (await connection.execute(text("select to_regclass('alembic_version')"))).scalar()
    if exists is not None:
        await _run(connection, "REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM %I", role)
    owned = (
        await connection.execute(
            text(
                "select count(*) from pg_tables where schemaname = :schema and tableowner = :role"
            ),
            {"schema": schema, "role": role},
        )
    ).scalar_one()
    if owned:
        raise RoleError(f"role {role} owns {owned} table(s) in {schema}; it must own none")
    tables = (
        await connection.execute(
            text("select count(*) from pg_tables where schemaname = :schema"), {"schema": schema}
        )
    ).scalar_one()
    return RoleReport(role=role, owner=str(owner), created=created, tables=int(tables))


async def grant_app_role(owner_url: str, role: str, password: str | None = None) -> RoleReport:
    """:func:`grant_on` over a connection as the owner (one transaction)."""
    if not owner_url.startswith("postgresql"):
        raise RoleError("roles exist on PostgreSQL only; SQLite needs none")
    engine = create_async_engine(owner_url)
    try:
        async with engine.begin() as connection:
            return await grant_on(connection, role, password)
    finally:
        await engine.dispose()
