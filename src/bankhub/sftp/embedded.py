"""The SFTP drop inside ``serve``'s worker, when ``BANKHUB_SFTP_PORT`` is set.

asyncssh is an optional extra (``bankhub[sftp]``): it is imported only when the drop is on, so
a deployment without it serves the API as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bankhub.clock import Clock
from bankhub.config import Settings
from bankhub.db.engine import Database
from bankhub.security.network import AbuseGuard
from bankhub.sync.engine import SyncEngine


@asynccontextmanager
async def running(
    settings: Settings,
    db: Database,
    engine: SyncEngine,
    clock: Clock,
    guard: AbuseGuard | None,
) -> AsyncIterator[None]:
    """Serve the drop for the life of the block. A host key that cannot be used, or a port
    that cannot be bound, stops the process at start-up with its reason, never later. Failed
    logins count in ``guard``, the API's own address block."""
    if settings.sftp_port is None:
        yield
        return
    from bankhub.sftp.server import Collaborators, DropServer

    drop = DropServer(Collaborators(settings, db, engine, clock, guard))
    await drop.start()
    try:
        yield
    finally:
        await drop.close()
