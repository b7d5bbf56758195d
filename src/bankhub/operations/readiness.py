"""Whether this process can serve: the checks behind ``GET /readyz``.

Each check answers ok or failed, and only its name leaves the process (the answer goes to
whatever load balancer or orchestrator asks); why one failed goes to the operator's log:

* ``database``: a statement round-trips to the database;
* ``migrations``: the schema is at the newest revision this version knows (a process started
  before ``bankhub migrate`` ran, or a database rolled back, is not ready);
* ``keys``: the data keyring is loaded (no stored secret or transaction can be read without it).

The checks together take at most :data:`TIMEOUT` seconds: a database that does not answer is
a failed check, never a probe left hanging.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import cache
from typing import Final

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from bankhub.db import migrate
from bankhub.hub import Hub

log = logging.getLogger("bankhub.readiness")

TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: dict[str, bool]

    @property
    def ready(self) -> bool:
        return all(self.checks.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]


@cache
def newest_revisions() -> frozenset[str]:
    """The heads of this version's migrations (read from its files once)."""
    return frozenset(migrate.current_heads())


def _revisions(connection: Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(connection).get_current_heads())


async def _schema(hub: Hub) -> tuple[bool, bool]:
    """(database reachable, schema at the newest revision)."""
    reachable = False
    try:
        async with hub.db.engine.connect() as connection:
            await connection.execute(text("select 1"))
            reachable = True
            current = await connection.run_sync(_revisions)
    except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
        step = "reading the schema's revision" if reachable else "reaching the database"
        log.warning("readiness: %s failed: %s", step, type(exc).__name__)
        return reachable, False
    if current != newest_revisions():
        log.warning(
            "readiness: the schema is at %s, this version needs %s",
            ",".join(sorted(current)) or "nothing",
            ",".join(sorted(newest_revisions())),
        )
        return True, False
    return True, True


async def _keys(hub: Hub) -> bool:
    try:
        await hub.ready()
    except Exception as exc:  # noqa: BLE001 - the keyring may still hold what it loaded before
        log.warning("readiness: reloading the data keys failed: %s", type(exc).__name__)
    return hub.keyring.loaded


async def check(hub: Hub) -> Readiness:
    database = migrations = keys = False
    try:
        async with asyncio.timeout(TIMEOUT):
            database, migrations = await _schema(hub)
            keys = await _keys(hub)
    except TimeoutError:
        log.warning("readiness: the checks did not finish within %.0f s", TIMEOUT)
        keys = keys or hub.keyring.loaded
    return Readiness({"database": database, "migrations": migrations, "keys": keys})
