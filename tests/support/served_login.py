"""A ``bankhub serve`` over a database that holds one login's transactions, on SQLite or on
PostgreSQL as deployed (the runtime role under row-level security, S14): the set-up of the
tests that read much through a real server (the unpaged stream's memory, the audit's crash).

The rows are stored by bankhub's own sync engine (encrypted and fingerprinted as a real sync
stores them), which is cheaper than connecting a sandbox login of the same size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from bankhub.config import Environment, Settings
from bankhub.connectors.base import AccountRecord, AccountType, TransactionRecord
from bankhub.customers import services as customers
from bankhub.db import roles, tenancy
from bankhub.hub import Hub
from bankhub.logins import services as logins
from bankhub.partners import services as partners
from bankhub.sync.engine import FetchedAccount, FetchResult
from tests.conftest import upgrade_now
from tests.support.live_server import LiveServer
from tests.support.postgres import PostgresRoles
from tests.support.server_plugin import LiveServerFactory


@dataclass(frozen=True)
class ServedLogin:
    server: LiveServer
    #: the app's key and the login's secret, as a partner sends them
    headers: dict[str, str]
    settings: Settings
    #: the server's environment (to start it again on the same database)
    env: dict[str, str]
    #: PostgreSQL: the superuser's URL (to read what the runtime role cannot); "" on SQLite
    superuser_url: str


async def _store(
    settings: Settings, app_role: str | None, name: str, records: Sequence[TransactionRecord]
) -> tuple[dict[str, str], str]:
    settings.make_data_dir()
    upgrade_now(settings.resolved_migration_url())
    if app_role is not None:
        await roles.grant_app_role(settings.resolved_migration_url(), app_role)
    hub = Hub.build(settings)
    try:
        await hub.ready()
        account = AccountRecord(
            bank_id=f"{name}-account",
            name="Current",
            type=AccountType.CURRENT,
            currency="EUR",
            balance=Decimal("1000.00"),
        )
        with tenancy.everything():
            async with hub.db.transaction() as session:
                issued = await partners.create_app(session, hub.hasher, hub.clock, name)
                customer = await customers.create_customer(session, hub.clock, issued.app, name)
                login, secret = logins.add_login(
                    session,
                    hub.hasher,
                    hub.clock(),
                    app_id=issued.app.id,
                    customer_id=customer.id,
                    service_id=1,
                )
                await session.flush()
                result = FetchResult([FetchedAccount(account, list(records))], None, {}, None)
                summary = await hub.engine.apply(session, login, result)
        assert summary.inserted == len(records)
        return issued.as_dict(), secret
    finally:
        await hub.close()


def served_login(
    live_server: LiveServerFactory,
    request: pytest.FixtureRequest,
    data_dir: Path,
    database: str,
    *,
    secret_key: str,
    name: str,
    records: Sequence[TransactionRecord],
) -> ServedLogin:
    """``records`` stored for one login of a new app named ``name``, then a server (no embedded
    worker) over that database; ``database`` is ``"sqlite"`` or ``"postgres"``."""
    env = {"BANKHUB_SECRET_KEY": secret_key, "BANKHUB_EMBEDDED_WORKER": "false"}
    app_role, superuser_url = None, ""
    if database == "postgres":
        deployed: PostgresRoles = request.getfixturevalue("postgres_roles")
        env["BANKHUB_DATABASE_URL"] = deployed.app_url
        env["BANKHUB_MIGRATION_DATABASE_URL"] = deployed.owner_url
        app_role, superuser_url = deployed.app, deployed.superuser_url
    settings = Settings(
        env=Environment.TEST,
        data_dir=data_dir,
        secret_key=secret_key,
        database_url=env.get("BANKHUB_DATABASE_URL"),
        migration_database_url=env.get("BANKHUB_MIGRATION_DATABASE_URL"),
    )
    creds, secret = asyncio.run(_store(settings, app_role, name, records))
    server = live_server(env, data_dir=data_dir)
    headers = {
        "client-id": creds["client_id"],
        "service-secret": creds["service_secret"],
        "login-secret": secret,
    }
    return ServedLogin(server, headers, settings, env, superuser_url)
