"""S14: on PostgreSQL, row-level security is a second wall behind the application's filters.

bankhub serves as a runtime role that owns no table and cannot bypass row-level security; the
tables belong to the role that runs the migrations. Each transaction names its app
(``bankhub.app_id``) or the operator's scope (``bankhub.scope = 'all'``), and the policies of
migration ``rls1`` show and accept only that app's rows. These tests speak raw SQL as the
runtime role, so they prove what the database itself enforces, whatever the application's
queries say; and they run the API end to end as that role.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Table, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from typer.testing import CliRunner

from bankhub.accounts.models import Transaction
from bankhub.cli import cli
from bankhub.db import migrate, tenancy
from bankhub.db.models import Base
from bankhub.jobs.runner import Runner
from bankhub.partners import branding
from bankhub.partners.models import App
from bankhub.requestlog import store as request_log
from bankhub.sftp.server import Collaborators, DropServer, Principal
from bankhub.usage import store as usage_store
from bankhub.webhooks import services as webhooks
from tests.api.connect_client import connect, create_customer, create_token
from tests.conftest import BASE_URL, Harness
from tests.statements.corpus import read
from tests.support.postgres import PostgresRoles
from tests.support.raw_http import Receiver

#: tables that hold no app's data, and why
GLOBAL_TABLES = {
    "signing_keys": "bankhub's own JWT signing keys (private halves encrypted, S20)",
    "data_keys": "the keyring's wrapped data keys (S20)",
    "system_flags": "switches of the whole installation (maintenance)",
    "blocked_addresses": "addresses blocked before anyone authenticated (S18)",
    "members": "the installation's dashboard team, who run every app",
    "member_sessions": "dashboard sign-ins of team members (only id hashes)",
    "member_invites": "invitations to the team (only token hashes)",
    "member_pending": "what a member's session holds for one use (secrets to show once, a post "
    "waiting for re-authentication), encrypted, going with the session",
    "smtp_settings": "the installation's outgoing mail server (password encrypted)",
    "connect_routes": "which process holds each connect session: keyed hashes of session ids, "
    "the owner's address, the (used) connect token; read before anyone is authenticated",
    "banks": "the operator's imported banks: the catalogue every app reads (docs/banks.md)",
    "bank_logos": "the imported banks' logos bankhub fetched and serves to every app's users",
    "gocardless_settings": "the installation's GoCardless access: the operator's secrets and "
    "the provider's token pair (encrypted), shared by every app's logins",
    "outbox": "mail to the installation's team, who serve every app (a consent summary spans apps)",
    "auth_version": "one counter of credential changes, read before anyone is authenticated "
    "(security.authcache)",
}
#: tables an unauthenticated request reads to learn who is calling (policy ``credential_lookup``)
LOOKUP_TABLES = {"apps", "api_keys", "oauth_token_families", "connect_tokens"}


def owner_column(table: Table, tenant: dict[str, str]) -> str | None:
    """The column that says whose row it is: ``app_id``, the app's own ``id``, or the foreign
    key to a parent that is a tenant table itself (refresh tokens → their grant)."""
    if table.name == "apps":
        return "id"
    if "app_id" in table.c:
        return "app_id"
    for fk in table.foreign_keys:
        if fk.column.table.name in tenant:
            return fk.parent.name
    return None


def tenant_tables() -> dict[str, str]:
    """Every tenant table of the models, with its owner column (parents before children)."""
    found: dict[str, str] = {}
    for table in Base.metadata.sorted_tables:
        column = owner_column(table, found)
        if column is not None:
            found[table.name] = column
    return found


async def test_every_tenant_table_has_a_policy(postgres_url: str) -> None:
    """A new table with an app's data and no policy (or an undeclared one) fails here."""
    await asyncio.to_thread(migrate.upgrade, postgres_url)
    tenant = tenant_tables()
    unclassified = sorted(
        t.name for t in Base.metadata.sorted_tables if t.name not in tenant | GLOBAL_TABLES
    )
    assert not unclassified, (
        f"tables with neither app_id, a tenant parent, nor a place in GLOBAL_TABLES: "
        f"{unclassified}; give them app_id and a policy (a new migration like rls1), or declare "
        "why they hold no app's data"
    )
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            flags = {
                name: (rls, force)
                for name, rls, force in await connection.execute(
                    text(
                        "select relname, relrowsecurity, relforcerowsecurity from pg_class "
                        "where relkind = 'r' and relnamespace = current_schema()::regnamespace"
                    )
                )
            }
            policies: dict[str, set[str]] = {}
            for table, policy in await connection.execute(
                text("select tablename, policyname from pg_policies where schemaname = 'public'")
            ):
                policies.setdefault(table, set()).add(policy)
    finally:
        await engine.dispose()
    missing = sorted(
        name
        for name in tenant
        if flags.get(name) != (True, True) or "tenant_rows" not in policies.get(name, set())
    )
    assert not missing, f"tenant tables without forced row-level security and policy: {missing}"
    assert {t for t, p in policies.items() if "credential_lookup" in p} == LOOKUP_TABLES
    assert all(flags[name] == (False, False) for name in GLOBAL_TABLES)


# --- a world of two apps, built through the API as the runtime role -------------------------


async def _app_id(h: Harness) -> int:
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            return int(
                (
                    await session.execute(
                        select(App.id).where(App.client_id == h.creds["client_id"])
                    )
                ).scalar_one()
            )


async def _endpoint(h: Harness, app_id: int, url: str) -> None:
    with tenancy.acting_for(app_id):
        async with h.hub.db.transaction() as session:
            await webhooks.create_endpoint(
                session, h.hub.keyring, h.clock(), app_id, url, allow_http=True
            )


async def _template(h: Harness, app_id: int, name: str) -> None:
    """The app's connect-page branding, as the dashboard saves it."""
    change = branding.check_change(
        display_name=name,
        welcome_text="",
        footer_text="",
        color_primary="#112233",
        color_secondary="",
        logo=None,
        remove_logo=False,
    )
    with tenancy.acting_for(app_id):
        async with h.hub.db.transaction() as session:
            app = await session.get(App, app_id)
            assert app is not None
            await branding.save(session, app, change, actor="operator", now=h.clock())


async def _populate(h: Harness, receiver: Receiver, name: str) -> dict[str, Any]:
    """Rows of this app in every tenant table, made by the API, the runner and the CLI's
    services, all running as the runtime role."""
    app_id = await _app_id(h)
    await _endpoint(h, app_id, f"{receiver.url}/{name}")
    await _template(h, app_id, name)
    login = await connect(h, "user_good")
    customer = await create_customer(h, f"{name}-waiting")
    await create_token(h, customer)  # a connect token nobody opened yet
    switched = await h.client.put(
        "/v2/payment/settings", headers=h.headers(), json={"enabled": True, "chosen_by": name}
    )
    assert switched.status_code == 200, switched.text  # payment settings
    paid = await h.client.post(
        "/v2/payment",
        headers=h.headers() | {"idempotency-key": f"{name}-payment-1"},
        json={
            "customer_id": customer,
            "service_id": 3,
            "callback_url": "http://localhost:2000/v2",
            "creditor_name": "Creditor",
            "creditor_iban": "DE89370400440532013000",
            "amount": "1.00",
            "currency": "EUR",
        },
    )
    assert paid.status_code == 200, paid.text  # a payment, its transfer and status history
    key = await h.client.post(
        "/v2/keys",
        headers=h.headers() | {"idempotency-key": f"{name}-key-1"},
        json={"scope": "read"},
    )
    assert key.status_code == 200, key.text  # an api key, an audit entry, a stored answer
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    signing = await h.client.post(
        "/v2/signature/key", headers=h.headers(), json={"public_key": public.decode()}
    )
    assert signing.status_code == 200, signing.text  # a signature key
    source = await h.client.post(
        "/v2/signature/source",
        headers=h.headers(),
        json={"url": f"http://127.0.0.1:9/{name}.keys"},  # nobody serves it: its sync failed
    )
    assert source.status_code == 200, source.text  # a signature key source
    grant = await h.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(h.creds["client_id"], h.creds["service_secret"]),
    )
    assert grant.status_code == 200, grant.text
    h.clock.advance(minutes=6)
    refreshed = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=login["secret"])
    )
    assert refreshed.status_code == 200, refreshed.text  # a sync run
    # a statement file dropped over SFTP, through the drop's own calls (an sftp_files row)
    drop = DropServer(Collaborators(h.hub.settings, h.hub.db, h.hub.engine, h.hub.clock, None))
    owner = await drop.customer(app_id, f"{name}-waiting")
    assert owner is not None
    principal = Principal(app_id, h.creds["client_id"], "sk_rls", "127.0.0.1")
    assert await drop.receive(principal, owner, "a.sta", read("mt940/ASNB/mt940.txt")) is None
    await usage_store.flush(h.hub.db, h.hub.usage)  # usage counts of these calls
    await request_log.flush(h.hub.db, h.hub.request_log)  # the request log of these calls
    return {"app_id": app_id, "login": login, "bearer": grant.json()["access_token"]}


@asynccontextmanager
async def _as(url: str) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def _rows(connection: AsyncConnection, table: str) -> list[dict[str, Any]]:
    result = await connection.execute(text(f"select * from {table}"))  # noqa: S608 - table names of the models
    return [dict(row._mapping) for row in result]


async def _owned_by(
    superuser: AsyncConnection, table: str, column: str, app_id: int
) -> list[dict[str, Any]]:
    """What the superuser (who bypasses row-level security) sees of the app in ``table``."""
    rows = await _rows(superuser, table)
    if table == "oauth_refresh_tokens":
        families = {
            r["id"] for r in await _rows(superuser, "oauth_token_families") if r["app_id"] == app_id
        }
        return [r for r in rows if r[column] in families]
    return [r for r in rows if r[column] == app_id]


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


async def _set(connection: AsyncConnection, app_id: str = "", scope: str = "") -> None:
    await connection.execute(
        text(
            "select set_config('bankhub.app_id', :a, true), set_config('bankhub.scope', :s, true)"
        ),
        {"a": app_id, "s": scope},
    )


async def _refused(connection: AsyncConnection, sql: str, **params: Any) -> str:
    """Run ``sql`` in a savepoint; the error message (the statement must fail)."""
    savepoint = await connection.begin_nested()
    try:
        await connection.execute(text(sql), params)
    except DBAPIError as exc:
        await savepoint.rollback()
        return str(exc.orig)
    await savepoint.rollback()
    raise AssertionError(f"not refused: {sql}")


async def test_the_runtime_role_sees_and_writes_only_the_chosen_apps_rows(
    app_role_harness: Harness, postgres_roles: PostgresRoles, receiver: Receiver
) -> None:
    a = app_role_harness
    b = Harness(a.hub, a.client, await a.new_app("Other app"))
    world_a = await _populate(a, receiver, "a")
    world_b = await _populate(b, receiver, "b")
    tally = await Runner(a.hub).run_once()  # deliveries and their attempts, for both apps
    assert tally.deliveries >= 2
    ids = {"a": world_a["app_id"], "b": world_b["app_id"]}
    tenant = tenant_tables()

    async with _as(postgres_roles.superuser_url) as su, _as(postgres_roles.app_url) as app:
        assert (await app.execute(text("select current_user"))).scalar() == postgres_roles.app
        for table, column in tenant.items():
            mine = await _owned_by(su, table, column, ids["a"])
            theirs = await _owned_by(su, table, column, ids["b"])
            assert mine, f"the set-up made no {table} rows for A"
            assert theirs, f"the set-up made no {table} rows for B"
            everyone = await _rows(su, table)

            await _set(app, app_id=str(ids["a"]))
            seen = await _rows(app, table)
            assert sorted(map(_key, seen)) == sorted(map(_key, mine)), table

            # Writing a row of B: a copy of one of A's rows, made B's, is refused.
            value = b_value = ids["b"]
            if table == "oauth_refresh_tokens":
                b_value = theirs[0][column]
            message = await _refused(
                app,
                f"insert into {table} select * from jsonb_populate_record("  # noqa: S608
                f"null::{table}, (select to_jsonb(t) from {table} t limit 1) "
                f"|| jsonb_build_object('{column}', cast(:value as text)))",
                value=str(b_value),
            )
            assert "row-level security" in message, (table, message)
            # ... and so is handing one of A's rows over to B
            message = await _refused(
                app,
                f"update {table} set {column} = :value",  # noqa: S608
                value=b_value if table == "oauth_refresh_tokens" else value,
            )
            assert "row-level security" in message, (table, message)
            await app.rollback()

            # Nothing chosen: no rows, except the credential lookups, which are read-only.
            seen = await _rows(app, table)
            if table in LOOKUP_TABLES:
                assert sorted(map(_key, seen)) == sorted(map(_key, everyone)), table
                update = await app.execute(
                    text(f"update {table} set {column} = {column}")  # noqa: S608
                )
                assert update.rowcount == 0, table
            else:
                assert seen == [], table
            await app.rollback()

            # The operator's scope sees every app.
            await _set(app, scope="all")
            seen = await _rows(app, table)
            assert sorted(map(_key, seen)) == sorted(map(_key, everyone)), table
            await app.rollback()

        # Before authentication only audit entries about no app may be written (S18's blocks),
        # and nobody but the operator reads them back.
        entry = (
            "insert into audit_log (app_id, actor, action, target_type, detail, at) "
            "values (cast(:app as integer), 'system:test', 'address.blocked', 'address', "
            "'{}', now())"
        )
        await app.execute(text(entry), {"app": None})
        assert await _rows(app, "audit_log") == []
        message = await _refused(app, entry, app=ids["a"])
        assert "row-level security" in message
        await app.rollback()


async def test_tables_belong_to_the_owner_and_the_runtime_role_is_bound(
    app_role_harness: Harness, postgres_roles: PostgresRoles
) -> None:
    async with _as(postgres_roles.superuser_url) as su:
        owners = {
            owner
            for (owner,) in await su.execute(
                text("select tableowner from pg_tables where schemaname = 'public'")
            )
        }
        assert owners == {postgres_roles.owner}
        superuser, bypass, member = (
            await su.execute(
                text(
                    "select rolsuper, rolbypassrls, pg_has_role(:app, :owner, 'MEMBER') "
                    "from pg_roles where rolname = :app"
                ),
                {"app": postgres_roles.app, "owner": postgres_roles.owner},
            )
        ).one()
        assert (superuser, bypass, member) == (False, False, False)
    async with _as(postgres_roles.app_url) as app:
        # The runtime role cannot take the wall down or change the schema.
        for sql in (
            "alter table customers disable row level security",
            "drop policy tenant_rows on customers",
            "alter table customers add column x int",
            "insert into alembic_version values ('x')",
        ):
            message = await _refused(app, sql)
            assert "must be owner" in message or "permission denied" in message, (sql, message)


async def test_the_api_works_end_to_end_as_the_runtime_role(
    app_role_harness: Harness, receiver: Receiver
) -> None:
    """Connect, sync, reads, webhook delivery and retention, all under row-level security."""
    a = app_role_harness
    b = Harness(a.hub, a.client, await a.new_app("Other app"))
    app_id = await _app_id(a)
    await _endpoint(a, app_id, f"{receiver.url}/hooks")
    login = await connect(a, "user_good")
    secret = login["secret"]
    accounts = await a.client.get("/v2/account", headers=a.headers(login_secret=secret))
    assert accounts.status_code == 200, accounts.text
    account_id = accounts.json()["data"][0]["id"]
    listed = await a.client.get("/v2/transaction", headers=a.headers(login_secret=secret))
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"]
    synced = await a.client.get(
        f"/v2/transaction/sync?account_id={account_id}", headers=a.headers(login_secret=secret)
    )
    assert synced.status_code == 200, synced.text
    assert synced.json()["data"]["added"]
    a.clock.advance(minutes=6)
    refreshed = await a.client.put("/v2/login/refresh", headers=a.headers(login_secret=secret))
    assert refreshed.status_code == 200, refreshed.text
    read = await a.client.get("/v2/login", headers=a.headers(login_secret=secret))
    customer_id = read.json()["data"]["customer_id"]
    export = await a.client.get(
        f"/v2/customer/export?customer_id={customer_id}", headers=a.headers()
    )
    assert export.status_code == 200, export.text

    # webhook delivery by the runner (every app's work, then each app's rows)
    tally = await Runner(a.hub).run_once()
    assert tally.deliveries >= 1
    assert receiver.received
    events = await a.client.get("/v2/event", headers=a.headers())
    event = events.json()["data"][0]
    detail = await a.client.get(f"/v2/event/{event['id']}", headers=a.headers())
    assert detail.json()["data"]["deliveries"][0]["status"] == "delivered"

    # the other app sees none of it
    assert (await b.client.get("/v2/event", headers=b.headers())).json()["data"] == []
    foreign = await b.client.get("/v2/account", headers=b.headers(login_secret=secret))
    assert foreign.status_code == 404

    # retention: a one-hour window, and the runner purges what is older
    window = await a.client.put(
        "/v2/app/retention", headers=a.headers(), json={"hours": 1, "chosen_by": "test"}
    )
    assert window.status_code == 200, window.text
    a.clock.advance(hours=2)
    await Runner(a.hub).run_once()
    with tenancy.acting_for(app_id):
        async with a.hub.db.transaction() as session:
            left = (await session.execute(select(Transaction.id))).all()
    assert left == []
    after = await a.client.get("/v2/transaction", headers=a.headers(login_secret=secret))
    assert after.status_code == 200
    assert after.json()["data"] == []

    # erasure of the login, as the runtime role
    gone = await a.client.delete("/v2/login", headers=a.headers(login_secret=secret))
    assert gone.status_code == 200, gone.text


async def test_a_connect_link_works_whatever_session_the_browser_had(
    app_role_harness: Harness,
) -> None:
    """The connect page acts for the app of the token it opens, not for the app of a session
    the same browser still has open."""
    a = app_role_harness
    b = Harness(a.hub, a.client, await a.new_app("Other app"))
    started = await a.client.get(
        (await create_token(a, await create_customer(a, "a-user"))).removeprefix(BASE_URL)
    )
    assert started.status_code == 303
    assert (await a.client.get("/v2/connect/session")).status_code == 200
    payload = await connect(b, "user_good")  # same browser, B's link
    accounts = await b.client.get("/v2/account", headers=b.headers(login_secret=payload["secret"]))
    assert accounts.status_code == 200, accounts.text
    assert accounts.json()["data"]


# --- the operator's commands -----------------------------------------------------------------


@pytest.fixture
def operator_env(
    postgres_roles: PostgresRoles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> PostgresRoles:
    monkeypatch.setenv("BANKHUB_ENV", "test")
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_SECRET_KEY", "cli-pepper-" + "y" * 40)
    monkeypatch.setenv("BANKHUB_DATABASE_URL", postgres_roles.app_url)
    monkeypatch.setenv("BANKHUB_MIGRATION_DATABASE_URL", postgres_roles.owner_url)
    return postgres_roles


def test_create_app_role_then_operate_as_it(operator_env: PostgresRoles) -> None:
    """``bankhub db create-app-role`` migrates as the owner and creates and grants the runtime
    role; the operator's commands then work through it (with the scope of every app)."""
    runner = CliRunner()
    first = runner.invoke(cli, ["db", "create-app-role", operator_env.app])
    assert first.exit_code == 0, first.output
    assert f"role {operator_env.app} created and granted" in first.output
    again = runner.invoke(cli, ["db", "create-app-role", operator_env.app])
    assert again.exit_code == 0, again.output
    assert "created" not in again.output
    created = runner.invoke(cli, ["apps", "create", "CLI app", "--json"])
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["client_id"]
    purged = runner.invoke(cli, ["purge", "--json"])
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.output)["apps_checked"] == 1
    # nothing of the operator's scope is left behind in this thread
    assert tenancy.current() is None
    owner = runner.invoke(cli, ["db", "create-app-role", operator_env.owner])
    assert owner.exit_code == 2
    assert "owns the tables" in owner.output
