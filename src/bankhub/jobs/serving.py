"""A serving process's part in the background work, for the life of ``bankhub serve``'s worker.

It claims the process's identity (``jobs.identity``, role ``serve``): the leases of its manual
refreshes carry it, and so do those of its embedded runner. A dead predecessor's leases are
released at once: by the runner as it starts, or here when the process runs no runner (an
API-only process on PostgreSQL, ``BANKHUB_EMBEDDED_WORKER=false``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bankhub.db import tenancy
from bankhub.hub import Hub
from bankhub.jobs import identity, leases
from bankhub.jobs.runner import Runner

log = logging.getLogger("bankhub.jobs")


@asynccontextmanager
async def background(hub: Hub) -> AsyncIterator[Runner | None]:
    """Claim the identity, reclaim or start the runner; undone in reverse on the way out."""
    me = identity.claim(hub.settings, "serve")
    hub.lease_owner = me.owner
    try:
        if not hub.settings.embedded_worker:
            try:
                with tenancy.everything():  # S14: leases of any app
                    await leases.reclaim(hub.db, me)
            except Exception:
                log.exception("taking back a previous run's leases failed; they lapse instead")
            yield None
            return
        runner = Runner(hub, identity=me)
        hub.db.outbox_listeners.append(runner.wake)
        stop = asyncio.Event()
        worker = asyncio.create_task(runner.run_forever(stop))
        try:
            yield runner
        finally:
            stop.set()
            await worker
            hub.db.outbox_listeners.remove(runner.wake)
    finally:
        me.release()
