"""Apps, keys, customers and logins for the benchmarks, made by bankhub's own services.

The benchmarks fill their bulk data (accounts, transactions, queued deliveries) with bulk
inserts, but whatever carries a secret or an encrypted column goes through the code the product
uses, so that a schema change (keys moving to their own table, state encrypted at rest) changes
the fixtures with it instead of leaving them writing columns that no longer exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import Clock
from bankhub.customers import services as customers
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners import services as partners
from bankhub.partners.models import App
from bankhub.security.secrets import SecretHasher


@dataclass(frozen=True, slots=True)
class BenchApp:
    app_id: int
    client_id: str
    service_secret: str
    app_secret: str


async def new_app(
    session: AsyncSession,
    hasher: SecretHasher,
    clock: Clock,
    name: str,
    *,
    retention_hours: int | None = None,
) -> tuple[App, BenchApp]:
    """An app with the seed's two keys (``partners.create_app``), its retention as asked."""
    issued = await partners.create_app(session, hasher, clock, name)
    if retention_hours is not None:
        await partners.set_retention(
            session, issued.app, retention_hours, "bench", now=clock(), actor="bench"
        )
    app = issued.app
    return app, BenchApp(app.id, app.client_id, issued.service_secret, issued.app_secret)


async def new_logins(
    session: AsyncSession,
    hasher: SecretHasher,
    clock: Clock,
    app: App,
    service_id: int,
    identifiers: list[str],
) -> list[tuple[Login, str]]:
    """One customer (``customers.create_customer``) with one active login
    (``logins.add_login``) per identifier; the logins with their login-secrets, flushed."""
    made: list[tuple[Login, str]] = []
    for identifier in identifiers:
        customer = await customers.create_customer(session, clock, app, identifier)
        made.append(
            logins.add_login(
                session,
                hasher,
                clock(),
                app_id=app.id,
                customer_id=customer.id,
                service_id=service_id,
            )
        )
    await session.flush()
    return made
