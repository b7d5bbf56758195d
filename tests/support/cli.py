"""What the command-line tests share: the configured database read in-process, and whether a
partner's credentials authenticate there."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from bankhub.config import Settings
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.partners import services as partners
from bankhub.security.secrets import SecretHasher


def in_db(work: Any) -> Any:
    """``await work(session, settings)`` in one transaction on the configured database, every
    app's rows in view."""
    settings = Settings()

    async def run() -> Any:
        db = Database(settings.resolved_database_url())
        try:
            with tenancy.everything():
                async with db.transaction() as session:
                    return await work(session, settings)
        finally:
            await db.dispose()

    return asyncio.run(run())


def authenticate(creds: dict[str, str]) -> str:
    """The client-id ``creds`` authenticate as; the service's ``DomainError`` when refused."""

    async def check(session: Any, settings: Settings) -> str:
        app, _ = await partners.authenticate(
            session,
            SecretHasher(settings.resolved_secret_key()),
            creds["client_id"],
            creds["service_secret"],
            None,
            now=datetime.now(UTC),
        )
        return app.client_id

    result: str = in_db(check)
    return result
