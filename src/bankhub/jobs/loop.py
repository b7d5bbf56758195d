"""The background loop: claims with leases, heartbeats, wake-ups and shutdown, for any source.

**Why one loop for both databases.** bankhub runs in two shapes: ``bankhub serve`` on SQLite
works its background jobs inside the serving process (the embedded runner), and on PostgreSQL
any number of ``bankhub worker`` processes share them. Both run this same loop over the same
sources, claiming rows with the same conditional updates and leases, so the single-process
installation exercises exactly the code the scaled-out one relies on and the two modes cannot
drift apart. What differs is confined to the database layer: SQLite has one writer at a time
(``Database.transaction(write=True)`` takes turns in process), PostgreSQL skips rows another
runner is claiming (``FOR UPDATE SKIP LOCKED``) and wakes the runners of other processes through
``LISTEN/NOTIFY`` (``jobs.wakeup``).

Work lives in the database, written in the same transaction as the change that causes it (a
delivery per event and endpoint, a login's ``next_sync_at``, a mail in the outbox). Each
:class:`Source` claims due rows with an atomic conditional update that sets a lease, so a row
is worked by one runner at a time; the loop renews the leases of work in progress (a heartbeat
every third of ``BANKHUB_LEASE_SECONDS``, :meth:`Source.renew`), so a short lease holds a long
piece of work. A runner that dies (even by SIGKILL) delays its rows until the lease lapses, or
less: restarted under the same identity (``jobs.identity``) it releases them at once
(``jobs.leases``), and a runner told to stop releases what it leaves unfinished.

A commit that queued work wakes the runner of its own process directly, and on PostgreSQL the
runners of every process through LISTEN/NOTIFY; polling every ``BANKHUB_WORKER_POLL_SECONDS`` is
the safety net under both.

Each source has its own bounded concurrency: a slow bank holds one sync slot, never a delivery
or a mail, and never another login's sync. A :class:`Sweep` is periodic work without rows to
claim (consent notices, retention); it is safe in any number of runners at once by its own
conditional updates.

The loop knows sources only through these two protocols; which ones run is decided by the
composition root (``jobs.runner``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import timedelta
from typing import Protocol

from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.jobs import leases, wakeup
from bankhub.jobs.identity import Identity

log = logging.getLogger("bankhub.jobs")


class Source(Protocol):
    """Rows to claim and work: scheduled syncs, webhook deliveries, outbox messages."""

    #: names the source in logs and in :meth:`Loop.run_once`'s tally
    @property
    def name(self) -> str: ...

    #: how many pieces of its work may run at once
    @property
    def slots(self) -> int: ...

    #: claim again once this many slots are free (batches keep the claims few)
    @property
    def refill(self) -> int: ...

    async def claim(self, limit: int) -> Sequence[Awaitable[bool]]:
        """Lease up to ``limit`` due rows; the work for each (True when it got done)."""
        ...

    async def renew(self) -> None:
        """Extend the leases of the work under way (the loop's heartbeat)."""
        ...

    async def finish(self) -> None:
        """At a stop, once its work was cancelled: write what was handed over."""
        ...


class Sweep(Protocol):
    """Periodic work over the whole database (consent notices, retention, housekeeping)."""

    @property
    def name(self) -> str: ...

    #: seconds between two sweeps
    @property
    def every(self) -> float: ...

    #: in :meth:`Loop.run_once`: before the sources claim (True) or after their work (False)
    @property
    def first(self) -> bool: ...

    async def sweep(self) -> object: ...


class Loop:
    """Runs the sources and sweeps it is given until told to stop.

    ``identity``: the process's (``jobs.identity``); its dead predecessors' leases are released
    when :meth:`run_forever` starts. ``owner`` names the holder of the leases (the identity's).
    ``ready``: awaited before each claim (the hub's keyring is loaded then).
    """

    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        identity: Identity | None,
        lease: timedelta,
        poll: float,
        ready: Callable[[], Awaitable[None]],
    ) -> None:
        self.db = db
        self.owner = owner
        self.identity = identity
        self.lease = lease
        self.poll = poll
        self._ready = ready
        self.sources: list[Source] = []
        self.sweeps: list[Sweep] = []
        self._woken: dict[str, asyncio.Event] = {}
        #: PostgreSQL: how many times the LISTEN for other processes' commits was put in place
        self.listens = 0

    def add(self, source: Source) -> None:
        self.sources.append(source)
        self._woken[source.name] = asyncio.Event()

    def every(self, sweep: Sweep) -> None:
        self.sweeps.append(sweep)

    def wake(self, kinds: Collection[str] | None = None) -> None:
        """Work of ``kinds`` (the sources' names; None: any) was queued: those sources look for
        work now instead of at the next poll, the others wait for theirs (``db.engine.WORK_KINDS``
        says why)."""
        for name, woken in self._woken.items():
            if kinds is None or name in kinds:
                woken.set()

    async def run_once(self) -> dict[str, int]:
        """Sweep, claim what is due now and work it to the end (tests and one-shot runs); how
        many pieces of each source's work got done."""
        with tenancy.everything():  # S14: the runner's work spans apps
            await self._ready()
            for sweep in self.sweeps:
                if sweep.first:
                    await sweep.sweep()
            claimed = [await source.claim(source.slots) for source in self.sources]
            done: dict[str, int] = {}
            for source, work in zip(self.sources, claimed, strict=True):
                done[source.name] = sum(await asyncio.gather(*work))
            for sweep in self.sweeps:
                if not sweep.first:
                    await sweep.sweep()
        return done

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Work until ``stop``: first release what a dead predecessor of this identity held,
        then claim and work due rows, woken by commits (and, on PostgreSQL, by other processes'
        commits) or every poll interval; on the way out, release what was left unfinished."""
        with tenancy.everything():  # S14: the runner's work spans apps; each sync narrows it
            if self.identity is not None:
                await self._reclaim(self.identity)
            helpers = [asyncio.ensure_future(self._heartbeat(stop))]
            if self.db.dialect == "postgresql":
                helpers.append(
                    asyncio.ensure_future(
                        wakeup.listen(self.db.engine, self.wake, stop, listening=self._listened)
                    )
                )
            try:
                await asyncio.gather(
                    *(self._loop(stop, source) for source in self.sources),
                    *(self._sweep_loop(stop, sweep) for sweep in self.sweeps),
                )
            finally:
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                for source in self.sources:
                    await source.finish()
                await self._release_unfinished()

    async def _reclaim(self, identity: Identity) -> None:
        try:
            await self._ready()
            await leases.reclaim(self.db, identity)
        except Exception:
            log.exception("taking back a previous run's leases failed; they lapse instead")

    def _listened(self) -> None:
        self.listens += 1

    async def _release_unfinished(self) -> None:
        """What this runner was doing when told to stop was cancelled: its leases go back now,
        its attempts show as interrupted."""
        try:
            await leases.release_own(self.db, self.owner)
        except Exception:
            log.exception("releasing the leases of unfinished work failed; they lapse instead")

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Renew the leases of the work under way, every third of the lease. A renewal that
        fails is retried at the next beat; a lease lost meanwhile is caught when the outcome is
        written (each source fences its writes on its lease)."""
        every = self.lease.total_seconds() / 3
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                continue
            for source in self.sources:
                try:
                    await source.renew()
                except Exception:
                    log.exception("renewing the leases of %s under way failed", source.name)

    async def _sweep_loop(self, stop: asyncio.Event, sweep: Sweep) -> None:
        """A sweep now, then every ``sweep.every`` seconds, until ``stop``.

        Stopping mid-sweep cancels it: its open unit of work rolls back, and the next sweep
        (in this runner or another) redoes it.
        """
        halt: asyncio.Task[object] = asyncio.ensure_future(stop.wait())
        try:
            while not halt.done():
                running: asyncio.Task[object] = asyncio.ensure_future(self._swept(sweep))
                try:
                    await asyncio.wait({running, halt}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    running.cancel()  # a no-op unless stopping while it runs
                    await asyncio.wait({running})
                if not running.cancelled() and (failure := running.exception()) is not None:
                    log.error("%s failed", sweep.name, exc_info=failure)
                await asyncio.wait({halt}, timeout=max(1.0, sweep.every))
        finally:
            halt.cancel()

    async def _swept(self, sweep: Sweep) -> object:
        await self._ready()
        return await sweep.sweep()

    async def _loop(self, stop: asyncio.Event, source: Source) -> None:
        """Keep up to ``source.slots`` pieces of work running; claim more when ``refill`` slots
        are free (or all are), when woken, or every poll interval.

        Claiming in batches of ``refill`` instead of one per finished piece keeps the claims
        (a unit of work each) few when work is short and plenty.
        """
        slots = max(1, source.slots)
        refill = max(1, min(source.refill, slots))
        woken = self._woken[source.name]
        running: set[asyncio.Task[bool]] = set()
        freed = asyncio.Event()

        def finished(task: asyncio.Task[bool]) -> None:
            running.discard(task)
            if not task.cancelled() and (failure := task.exception()) is not None:
                log.error("background work failed", exc_info=failure)
            if slots - len(running) >= refill:
                freed.set()

        try:
            while not stop.is_set():
                freed.clear()
                free = slots - len(running)
                if free >= refill or (free > 0 and not running):
                    try:
                        await self._ready()
                        for work in await source.claim(free):
                            task = asyncio.ensure_future(work)
                            running.add(task)
                            task.add_done_callback(finished)
                    except Exception:
                        log.exception("claiming background work failed")
                waits: list[asyncio.Task[object]] = [
                    asyncio.ensure_future(woken.wait()),
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(freed.wait()),
                ]
                done, _ = await asyncio.wait(
                    waits, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED
                )
                for helper in waits:
                    helper.cancel()
                if waits[0] in done:
                    woken.clear()
        finally:
            left = list(running)
            for task in left:
                task.cancel()
            for task in left:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
