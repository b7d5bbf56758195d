"""``bankhub sftp``: the SFTP statement drop as a process of its own (docs/sftp.md)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any, Protocol

from bankhub.clock import Clock
from bankhub.config import Settings
from bankhub.db.engine import Database
from bankhub.security import shared
from bankhub.security.network import AbuseGuard
from bankhub.sftp import hostkey
from bankhub.sftp.server import Collaborators, DropServer
from bankhub.sync.engine import SyncEngine


class Assembly(Protocol):
    """What the drop takes from the composition root the command builds."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def engine(self) -> SyncEngine: ...

    @property
    def clock(self) -> Clock: ...

    async def ready(self) -> None: ...

    async def close(self) -> None: ...


def fingerprint(settings: Settings) -> str:
    """The host key's fingerprint; the key is made now if the drop never ran on this data dir,
    so that it can be pinned before the first start."""
    return hostkey.fingerprint(hostkey.load_or_create(settings.data_dir))


async def serve(
    build: Callable[[], Assembly],
    host: str | None,
    port: int | None,
    say: Callable[[str], Any],
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (or ``stop``). Failed logins count toward the address
    block in the store every process shares, as the API's do."""
    hub = build()
    await hub.ready()
    store = shared.SharedStore(hub.settings)
    guard = (
        AbuseGuard(hub.settings, hub.db, hub.clock, store=store)
        if hub.settings.blocking_on
        else None
    )
    drop = DropServer(Collaborators(hub.settings, hub.db, hub.engine, hub.clock, guard))
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        bound = await drop.start(host, port if port is not None else hub.settings.sftp_port)
        say(f"bankhub sftp listening on {host or hub.settings.sftp_host}:{bound}")
        say(f"host key {drop.fingerprint}")
        await stop.wait()
    finally:
        await drop.close()
        await store.close()
        await hub.close()
